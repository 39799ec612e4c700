"""Where per-item batches run: in this process, in a local process pool, or on Ray.

An executor's `map_unordered(fn, batches)` yields `(batch index, results)` as batches
finish; `reasonloop.cache.map_cached` writes each one as a shard right away. `fn` and the
batches must be picklable (a module-level function, or a `functools.partial` of one).

    with make_executor("ray", address="ray://head:10001") as ex:   # a cluster
        map_cached(items, keys, grade_chunk, cache, runner=ex)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reasonloop.cache import InlineRunner
from reasonloop.errors import ReasonloopError

EXECUTORS: dict[str, Callable[..., "Executor"]] = {}


def register_executor(name: str) -> Callable:
    def decorate(factory: Callable[..., "Executor"]) -> Callable[..., "Executor"]:
        EXECUTORS[name] = factory
        return factory

    return decorate


class Executor:
    """Base: context manager around `map_unordered`; `close` releases workers."""

    name = "base"

    def map_unordered(self, fn: Callable[[Any], list], batches: Sequence[Any]) -> Iterator[tuple[int, list]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@register_executor("inline")
class InlineExecutor(InlineRunner, Executor):
    """One batch after another in this process (what models loaded here use)."""

    name = "inline"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        pass


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@register_executor("local")
class ProcessExecutor(Executor):
    """A local process pool (spawned workers, kept for the executor's lifetime)."""

    name = "local"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool = None

    @property
    def pool(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def map_unordered(self, fn, batches):
        from concurrent.futures import as_completed

        futures = {self.pool.submit(fn, batch): index for index, batch in enumerate(batches)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def call_batch(fn: Callable[[Any], list], batch: Any) -> list:
    return fn(batch)


def each(fn: Callable[[Any], Any], batch: Sequence[Any]) -> list:
    """`partial(each, f)` turns a per-item function into a batch function for `map_cached`."""
    return [fn(item) for item in batch]


@register_executor("ray")
class RayExecutor(Executor):
    """Ray tasks: `ray.init()` on this machine, or `address` of a running cluster.

    At most two batches per worker are in flight, so a killed run loses little and a
    large input does not flood the object store.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ReasonloopError("the ray executor needs Ray: pip install 'reasonloop[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            local = address in (None, "", "local")
            ray.init(
                address=None if local else address,
                num_cpus=(workers or default_workers()) if local else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}},
            )
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._call = ray.remote(num_cpus=1)(call_batch)

    def map_unordered(self, fn, batches):
        ray = self.ray
        fn_ref, pending, queue = ray.put(fn), {}, list(enumerate(batches))[::-1]
        try:
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:
                    index, batch = queue.pop()
                    pending[self._call.remote(fn_ref, batch)] = index
                done, _ = ray.wait(list(pending), num_returns=1)
                yield pending.pop(done[0]), ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        pass  # the Ray runtime stays up for later calls in this process; ray.shutdown() ends it


def make_executor(kind: str = "local", *, workers: int | None = None, address: str | None = None) -> Executor:
    if kind not in EXECUTORS:
        raise ReasonloopError(f"unknown executor {kind!r}; allowed: {', '.join(sorted(EXECUTORS))}")
    return EXECUTORS[kind](workers=workers, address=address)
