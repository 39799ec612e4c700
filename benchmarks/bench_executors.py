"""Verification throughput: Ray executor vs the local process pool, on the same pairs.

Both run the pipeline's verify path (`map_cached` + the shared verifier's `grade_batch`,
batches of 256 pairs, a fresh cache each time so every pair is really graded) over real
completions: GPT-3 GSM8K solutions against their reference answers and MATH-500 worked
solutions against their LaTeX answers. Worker start-up (pool spawn, `ray.init`) is timed
separately and left out of the throughput. Target: Ray >= 0.7x the pool, identical verdicts.

    OMP_NUM_THREADS=2 flock /tmp/rl-heavy.lock python benchmarks/bench_executors.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

from reasonloop.cache import ItemCache, item_key, map_cached
from reasonloop.pipeline.executors import make_executor
from reasonloop.solve import grade_chunk

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GPT3_SETS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def real_pairs(limit: int) -> list[tuple[str, str]]:
    pairs = []
    for line in (DATA / "model-outputs" / "gsm8k_gpt3_solutions.jsonl").read_text().splitlines():
        row = json.loads(line)
        reference = row["ground_truth"].rsplit("A:", 1)[1].strip()
        pairs += [(row[name]["solution"], reference) for name in GPT3_SETS]
    for line in (DATA / "math500" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        pairs.append((row["solution"], row["answer"]))
    return (pairs * (limit // len(pairs) + 1))[:limit]


def verify_with(executor, pairs, batch_size: int) -> tuple[float, list]:
    keys = [item_key("bench", i, p) for i, p in enumerate(pairs)]  # every pair graded, no dedup
    compute = partial(grade_chunk, options={"kind": "auto", "timeout": 5.0}, workers=1)
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        verdicts = map_cached(pairs, keys, compute, ItemCache(cache_dir), batch_size=batch_size, runner=executor)
        return time.perf_counter() - start, verdicts


def measure(kind: str, pairs, workers: int, batch_size: int, repeats: int) -> dict:
    start = time.perf_counter()
    executor = make_executor(kind, workers=workers)
    verify_with(executor, pairs[: batch_size * workers], batch_size)  # warm: workers up, modules imported
    startup = time.perf_counter() - start
    best, verdicts = min((verify_with(executor, pairs, batch_size) for _ in range(repeats)), key=lambda r: r[0])
    executor.close()
    return {"startup_s": startup, "seconds": best, "throughput": len(pairs) / best, "verdicts": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pairs = real_pairs(args.pairs)
    pool = measure("local", pairs, args.workers, args.batch_size, args.repeats)
    ray = measure("ray", pairs, args.workers, args.batch_size, args.repeats)
    identical = pool["verdicts"] == ray["verdicts"]
    correct = sum(v["status"] == "correct" for v in pool["verdicts"]) / len(pairs)
    print(f"{len(pairs)} pairs ({100 * correct:.1f}% correct), {args.workers} workers, batches of {args.batch_size}")
    for name, result in (("process pool", pool), ("ray", ray)):
        print(f"  {name:12s}: {result['throughput']:8.0f} pairs/s ({result['seconds']:.2f} s; start-up {result['startup_s']:.1f} s)")
    print(f"ray executor verify throughput: {ray['throughput'] / pool['throughput']:.2f}x the process pool "
          f"(target >= 0.7x), results identical: {identical}")


if __name__ == "__main__":
    main()
