"""The content-addressed cache: a fully cached re-run vs the cold run, and its cost per item.

Workload: the pipeline's solve + verify path (`solve_problems`, `verify_attempts`) over
GSM8K problems with the tiny Llama sampling at temperature 0.8 and the shared verifier,
inline in this process. Three passes in one process run:
  cold    empty cache: every item generated, graded, and written as checksummed shards;
  cached  the same call again: every item read back from the cache (no model loaded);
and the cache's own share of the cold pass: its wall time minus the time spent inside the
compute functions (generation and grading), per item. Targets: cached >= 50x faster than
cold; overhead <= 1 ms per item.

    OMP_NUM_THREADS=2 flock /tmp/rl-heavy.lock python benchmarks/bench_cache.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import reasonloop.solve as solve_path
from reasonloop.search import SolveSettings
from reasonloop.pipeline.executors import make_executor
from reasonloop.pipeline.contract import RunContext, StageOutput, fingerprint_path
from reasonloop.pipeline.engine import no_progress
from reasonloop.pipeline.recipe import parse_recipe
from reasonloop.pipeline.stages.solving import generator_spec, model_prompt_format, run_caches
from reasonloop.sources.datasets import load_problems

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class ComputeTimer:
    """Wraps the stage compute functions to add up the time spent inside them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.originals = {name: getattr(solve_path, name) for name in ("generate_chunk", "grade_chunk")}
        for name, function in self.originals.items():
            setattr(solve_path, name, self.timed(function))

    def timed(self, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return wrapper


def make_model(root: Path, problems) -> StageOutput:
    from reasonloop.models.tiny import create_tiny_model
    from reasonloop.prompts import PLAIN_FORMAT

    path = create_tiny_model(root / "tiny", [p.question for p in problems], seed=0)
    PLAIN_FORMAT.save(path)
    return StageOutput("model", str(path), fingerprint_path(path))


def solve_and_verify(ctx: RunContext, model: StageOutput, problems, settings: SolveSettings) -> list:
    solved = solve_path.solve(problems, generator_spec(model, "auto", 32), settings, prompt_format=model_prompt_format(model),
                              fingerprint=model.fingerprint, caches=run_caches(ctx))
    return solved.all_verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    problems = load_problems(DATA / "gsm8k" / "test.jsonl", preset="gsm8k", limit=args.problems).records
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_model(root, problems)
        params = SolveSettings(strategy="sample", n=1, temperature=0.8, max_new_tokens=args.max_new_tokens, batch_size=32,
                               seed=0)
        recipe = parse_recipe({"name": "bench", "stages": []})
        ctx = RunContext(recipe, root / "run", root / "cache", make_executor("inline"), no_progress, log=lambda s: None)
        timer = ComputeTimer()
        start = time.perf_counter()
        cold = solve_and_verify(ctx, model, problems, params)
        cold_s = time.perf_counter() - start
        compute_s, timer.seconds = timer.seconds, 0.0
        start = time.perf_counter()
        cached = solve_and_verify(ctx, model, problems, params)
        cached_s = time.perf_counter() - start
        assert timer.seconds == 0.0, "the cached pass computed something"
        assert [v.model_dump() for v in cold] == [v.model_dump() for v in cached]
        items = 2 * len(problems)  # each problem: one generation item and one verification item
        overhead_ms = 1000 * (cold_s - compute_s) / items
        print(json.dumps({"problems": len(problems), "cold_s": round(cold_s, 3), "compute_s": round(compute_s, 3),
                          "cached_s": round(cached_s, 4)}))
        print(f"fully cached re-run: {cold_s / cached_s:.0f}x faster than the cold run "
              f"({cached_s:.3f} s vs {cold_s:.1f} s; target >= 50x)")
        print(f"cache overhead per item: {overhead_ms:.3f} ms cold (keys, shard writes with fsync), "
              f"{1000 * cached_s / items:.3f} ms cached (target <= 1 ms)")


if __name__ == "__main__":
    main()
