"""Sandbox throughput: isolated executions per second of a short program, against a naive baseline.

Program: `print(sum(range(1000)))`. Baseline: `subprocess.run([python, "-c", code])`, one
fresh interpreter per program (no isolation at all), in a thread pool of the same width.
Ours: `reasonloop.verify.sandbox.Sandbox` with its default configuration (the one the
hostile-program tests use: bubblewrap namespaces with network isolation, nobody, rlimits),
warm fork servers, `run_many`. Both run in this process, one after the other; every
output is checked. The active isolation layers are printed first.

    python benchmarks/bench_sandbox.py [--programs 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from reasonloop.verify.sandbox import Limits, Sandbox

CODE = "print(sum(range(1000)))"
EXPECTED = "499500\n"


def baseline(programs: int, workers: int) -> float:
    def one(_: int) -> str:
        return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=30).stdout

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        outputs = list(pool.map(one, range(programs)))
    seconds = time.perf_counter() - start
    assert all(out == EXPECTED for out in outputs), "baseline printed something else"
    return programs / seconds


def ours(sandbox: Sandbox, programs: int) -> float:
    limits = Limits(timeout_s=5, memory_mb=512)
    sandbox.run_many([CODE] * 2 * sandbox.workers, limits)  # warm: every server started
    start = time.perf_counter()
    results = sandbox.run_many([CODE] * programs, limits)
    seconds = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok" or r.stdout != EXPECTED]
    assert not bad, f"{len(bad)} programs failed, first: {bad[0]}"
    return programs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--baseline-programs", type=int, default=200, help="the baseline is slow: fewer programs")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with Sandbox(workers=args.workers) as sandbox:
        for layer in sandbox.layers():
            print(f"  {layer.name:26} {'active' if layer.active else 'UNAVAILABLE':12} {layer.detail}")
        base = baseline(args.baseline_programs, args.workers)
        fast = ours(sandbox, args.programs)
    print(f"{CODE!r}, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"baseline subprocess.run([python, '-c', code]), no isolation: {base:8.1f} programs/s "
          f"({args.baseline_programs} programs)")
    print(f"reasonloop sandbox (warm fork servers, isolated):          {fast:8.1f} programs/s "
          f"({args.programs} programs)")
    print(f"ratio: {fast / base:.1f}x")


if __name__ == "__main__":
    main()
