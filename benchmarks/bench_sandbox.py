"""Sandbox throughput: isolated executions per second of a short program, against a naive baseline.

Program: `print(sum(range(1000)))`. Baseline: `subprocess.run([python, "-c", code])`, one
fresh interpreter per program (no isolation at all), in a thread pool of the same width.
Ours: `reasonloop.verify.sandbox.Sandbox` with its default configuration (the one the
hostile-program tests use: bubblewrap namespaces with network isolation, nobody, rlimits),
warm fork servers, `run_many`. Both run in this process, one after the other; every
output is checked. The active isolation layers are printed first. Besides programs per
second (which other load on the machine lowers: the load average is printed), the CPU
time each program costs is measured: this process plus, for the baseline, its children,
for ours the server processes with the programs they reaped (`/proc/PID/stat`).

    python benchmarks/bench_sandbox.py [--programs 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from reasonloop.verify.sandbox import Limits, Sandbox

CODE = "print(sum(range(1000)))"
EXPECTED = "499500\n"


TICK = os.sysconf("SC_CLK_TCK")


def baseline(programs: int, workers: int) -> tuple[float, float]:
    """Programs per second and CPU seconds per program (this process and its children)."""
    def one(_: int) -> str:
        return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=30,
                              check=False).stdout

    cpu = cpu_self_and_children()
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        outputs = list(pool.map(one, range(programs)))
    seconds = time.perf_counter() - start
    assert all(out == EXPECTED for out in outputs), "baseline printed something else"
    return programs / seconds, (cpu_self_and_children() - cpu) / programs


def ours(sandbox: Sandbox, programs: int) -> tuple[float, float]:
    """Programs per second and CPU seconds per program (this process, the servers and their programs)."""
    limits = Limits(timeout_s=5, memory_mb=512)
    sandbox.run_many([CODE] * 2 * sandbox.workers, limits)  # warm: every server started
    cpu = time.process_time() + server_cpu(sandbox)
    start = time.perf_counter()
    results = sandbox.run_many([CODE] * programs, limits)
    seconds = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok" or r.stdout != EXPECTED]
    assert not bad, f"{len(bad)} programs failed, first: {bad[0]}"
    return programs / seconds, (time.process_time() + server_cpu(sandbox) - cpu) / programs


def cpu_self_and_children() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def server_cpu(sandbox: Sandbox) -> float:
    """CPU seconds of every process under the servers, with the programs they reaped."""
    parents, times = {}, {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        times[int(name)] = sum(int(value) for value in fields[11:15]) / TICK  # utime stime cutime cstime
    found, frontier = set(), set(sandbox.server_pids())
    while frontier:
        found |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
    return sum(times.get(pid, 0.0) for pid in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--baseline-programs", type=int, default=200, help="the baseline is slow: fewer programs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with Sandbox(workers=args.workers) as sandbox:
        for layer in sandbox.layers():
            print(f"  {layer.name:26} {'active' if layer.active else 'UNAVAILABLE':12} {layer.detail}")
        base, base_cpu = baseline(args.baseline_programs, args.workers)
        fast, fast_cpu = ours(sandbox, args.programs)
    print(f"{CODE!r}, {args.workers} workers, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"baseline subprocess.run([python, '-c', code]), no isolation: {base:8.1f} programs/s, "
          f"{base_cpu * 1e3:6.2f} ms CPU each ({args.baseline_programs} programs)")
    print(f"reasonloop sandbox (warm fork servers, isolated):          {fast:8.1f} programs/s, "
          f"{fast_cpu * 1e3:6.2f} ms CPU each ({args.programs} programs)")
    print(f"ratio: {fast / base:.1f}x programs/s, {base_cpu / fast_cpu:.1f}x less CPU per program; "
          f"at that CPU cost {os.cpu_count()} idle cores would run {(os.cpu_count() or 1) / fast_cpu:.0f} programs/s")


if __name__ == "__main__":
    main()
