"""A pool of grader processes with a hard per-item deadline.

`concurrent.futures` cannot kill one stuck task without breaking the whole pool, so this is
a small pool of our own: one pair of pipes per worker, one item in flight per worker. An
item whose worker has not answered `KILL_GRACE` seconds after its timeout gets `timeout`;
the worker is killed and a fresh one started, and the batch goes on.

Workers are fresh interpreters running `worker.main`, not
`multiprocessing` children: those re-import the caller's `__main__`, which breaks scripts
without an `if __name__ == "__main__"` guard, and forking a threaded parent (torch) can
deadlock. A worker costs about a second to start (math-verify's import), paid once per
worker and again only after a kill. One pool per process is kept (`shared_pool`) so repeated
calls are cheap; it is closed at interpreter exit, and workers exit on their own when the
parent's pipe closes.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Sequence

from reasonloop.verify.worker import Outcome

KILL_GRACE = 0.5
STARTUP_TIMEOUT = 60.0
MAX_START_FAILURES = 3
WORKER_COMMAND = "import sys; from reasonloop.verify.worker import main; main(sys.argv[1:])"


@dataclass
class Worker:
    process: subprocess.Popen
    inbox: Connection  # we send items here
    outbox: Connection  # the worker answers here
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    job: int | None = None
    deadline: float = 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.inbox.close()
        self.outbox.close()


def spawn_worker(command: str = WORKER_COMMAND) -> Worker:
    """Start a worker interpreter with two pipes of its own (their fds passed as arguments)."""
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", command, str(child_reads), str(child_writes)],
            pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL, env=env,
        )
    finally:
        os.close(child_reads)
        os.close(child_writes)
    return Worker(process, Connection(parent_writes, readable=False), Connection(parent_reads, writable=False))


class GraderPool:
    """Run `worker.math_verify_pair` on many pairs, in order, each within its timeout."""

    def __init__(self, size: int | None = None, worker_command: str = WORKER_COMMAND):
        self.size = max(1, size or os.cpu_count() or 1)
        self.worker_command = worker_command  # Python source a worker runs (tests swap in a stuck one)
        self.owner_pid = os.getpid()  # a forked child must not share (or close) its parent's workers
        self.workers: list[Worker] = []
        self.lock = threading.Lock()
        self.start_failures = 0

    def run(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list[Outcome]:
        if not pairs:
            return []
        with self.lock:
            return Batch(self, pairs, timeout).run()

    def start(self, count: int | None = None) -> None:
        """Spawn up to `count` (default: all) workers now and return at once: each imports
        math-verify in its own process while the caller goes on (the fast path, say), so the
        first batch that needs them does not wait for the imports. A running batch is left alone."""
        if self.lock.acquire(blocking=False):
            try:
                self.grow_to(count or self.size)
            finally:
                self.lock.release()

    def grow_to(self, count: int) -> None:
        while len(self.workers) < min(count, self.size):
            self.workers.append(spawn_worker(self.worker_command))

    def replace(self, worker: Worker) -> None:
        worker.stop()
        self.workers[self.workers.index(worker)] = spawn_worker(self.worker_command)

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.inbox.send(None)
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            try:
                worker.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            worker.stop()
        self.workers = []


class Batch:
    """One `run` call: hand items to ready workers, collect answers, enforce deadlines."""

    def __init__(self, pool: GraderPool, pairs: Sequence[tuple[str, str]], timeout: float):
        self.pool, self.pairs, self.timeout = pool, pairs, timeout
        self.results: list[Outcome | None] = [None] * len(pairs)
        self.queue = deque(range(len(pairs)))

    def run(self) -> list[Outcome]:
        self.pool.grow_to(len(self.pairs))
        while self.queue or self.busy():
            if self.pool.start_failures >= MAX_START_FAILURES:
                self.fail_remaining("grader processes failed to start")
                break
            self.dispatch()
            self.collect()
            self.enforce_deadlines()
        return [result or ("error", "not graded") for result in self.results]

    def busy(self) -> list[Worker]:
        return [worker for worker in self.pool.workers if worker.job is not None]

    def dispatch(self) -> None:
        for worker in self.pool.workers:
            if worker.ready and worker.job is None and self.queue:
                index = self.queue.popleft()
                prediction, reference = self.pairs[index]
                try:
                    worker.inbox.send((index, prediction, reference, self.timeout))
                except (OSError, ValueError):
                    self.queue.appendleft(index)
                    self.pool.replace(worker)
                    continue
                worker.job, worker.deadline = index, time.monotonic() + self.timeout + KILL_GRACE

    def collect(self) -> None:
        workers = {worker.outbox: worker for worker in self.pool.workers}
        for connection in wait(list(workers), timeout=self.next_wait()):
            worker = workers[connection]
            try:
                message = connection.recv()
            except (EOFError, OSError):
                self.worker_died(worker)
                continue
            if message == "ready":
                worker.ready, self.pool.start_failures = True, 0
            elif worker.job == message[0]:
                self.results[worker.job], worker.job = message[1], None

    def next_wait(self) -> float:
        now = time.monotonic()
        deadlines = [worker.deadline for worker in self.busy()]
        deadlines += [worker.started + STARTUP_TIMEOUT for worker in self.pool.workers if not worker.ready]
        return max(0.0, min(deadlines, default=now + 1.0) - now)

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self.pool.workers):
            if worker.job is not None and now > worker.deadline:
                self.results[worker.job] = ("timeout", f"grader killed after {self.timeout:g} s")
                self.pool.replace(worker)
            elif not worker.ready and now > worker.started + STARTUP_TIMEOUT:
                self.pool.start_failures += 1
                self.pool.replace(worker)

    def worker_died(self, worker: Worker) -> None:
        if worker.job is not None:
            self.results[worker.job] = ("error", f"grader process died (exit code {worker.process.poll()})")
        elif not worker.ready:
            self.pool.start_failures += 1
        self.pool.replace(worker)

    def fail_remaining(self, reason: str) -> None:
        for index in list(self.queue) + [worker.job for worker in self.busy()]:
            self.results[index] = ("error", reason)
        self.queue.clear()
        for worker in self.busy():
            worker.job = None


_SHARED: GraderPool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool(workers: int | None = None) -> GraderPool:
    """The process-wide pool, created on first use (re-created when a different `workers` is asked for)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None and _SHARED.owner_pid != os.getpid():
            _SHARED = None  # inherited through fork: those workers belong to the parent
        if _SHARED is not None and workers is None:
            return _SHARED
        size = max(1, workers or os.cpu_count() or 1)
        if _SHARED is not None and _SHARED.size != size:
            _SHARED.close()
            _SHARED = None
        if _SHARED is None:
            _SHARED = GraderPool(size)
        return _SHARED


def warm_up(workers: int | None = None) -> GraderPool:
    """Start the shared pool's workers in the background (see `GraderPool.start`)."""
    pool = shared_pool(workers)
    pool.start()
    return pool


@atexit.register
def close_shared_pool() -> None:
    global _SHARED
    if _SHARED is not None and _SHARED.owner_pid == os.getpid():
        _SHARED.close()
    _SHARED = None
