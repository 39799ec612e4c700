"""The one solve path against raw `generate` + `grade_batch`: what does the path cost?

Same tiny model, same problems (built-in templates), same batch size, sampling on
(temperature 1, n samples per problem), calculator off on both sides. Baseline: the hf
generator's `generate` over fixed chunks of the prompts with one seed, then one
`grade_batch` over every completion. Ours: `reasonloop.solve.solve` with the `sample`
strategy (per-problem seeds, attempts and verdicts as records, strategy selection), first
without a cache, then with a cold directory cache (every batch written as a shard).
Only real generated tokens count (`Completion.tokens`: before EOS/stop, no padding).
Each side: median of `--repeats` runs after a warm-up, the sides taking turns.

    OMP_NUM_THREADS=2 python benchmarks/bench_solve.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from reasonloop.models import load_generator  # noqa: E402
from reasonloop.models.base import SamplingParams  # noqa: E402
from reasonloop.models.tiny import create_tiny_model  # noqa: E402
from reasonloop.prompts import PLAIN_FORMAT  # noqa: E402
from reasonloop.search import SolveSettings  # noqa: E402
from reasonloop.solve import directory_caches, solve  # noqa: E402
from reasonloop.sources.templates.builtin import builtin_problems  # noqa: E402
from reasonloop.verify import grade_batch  # noqa: E402


def raw(generator, problems, params: SamplingParams, batch_size: int) -> tuple[int, int]:
    """(generated tokens, verdicts) of plain generate + grade_batch."""
    prompts = [PLAIN_FORMAT.render_prompt(p.question) for p in problems]
    completions = []
    for start in range(0, len(prompts), batch_size):
        outputs = generator.generate(prompts[start : start + batch_size], params)
        completions += [(c, p.answer) for p, samples in zip(problems[start : start + batch_size], outputs) for c in samples]
    verdicts = grade_batch([(c.text, answer) for c, answer in completions])
    return sum(c.tokens for c, _ in completions), len(verdicts)


def ours(generator, problems, settings: SolveSettings, cache_dir: Path | None) -> tuple[int, int]:
    caches = directory_caches(cache_dir) if cache_dir else None
    solved = solve(problems, generator, settings, prompt_format=PLAIN_FORMAT, caches=caches)
    return sum(a.tokens for a in solved.attempts), len(solved.all_verdicts)


CLOCK = time.perf_counter  # --cpu: this process's CPU time (steadier than wall time on a loaded machine)


def interleaved(sides: dict, repeats: int) -> dict[str, tuple[float, int]]:
    """Median seconds and tokens of each side, the sides run in turn each repeat (a machine whose
    load changes during the run then slows every side alike)."""
    for run in sides.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in sides}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for name, run in sides.items():
            start = CLOCK()
            tokens[name], _ = run()
            times[name].append(CLOCK() - start)
    return {name: (statistics.median(times[name]), tokens[name]) for name in sides}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16, help="problems per batch")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="time by this process's CPU time, not wall time")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    problems = builtin_problems(2, seed=0, max_steps=3)[: args.problems]
    with tempfile.TemporaryDirectory() as tmp:
        texts = [PLAIN_FORMAT.render_prompt(p.question) + PLAIN_FORMAT.render_target(p.solution, p.answer)
                 for p in problems]
        model = create_tiny_model(Path(tmp) / "tiny", texts, seed=0)
        generator = load_generator(model, batch_size=args.batch_size * args.samples)
        params = SamplingParams(n=args.samples, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0,
                                **PLAIN_FORMAT.decoding())  # the same stop strings; calculator off on both sides
        settings = SolveSettings(strategy="sample", n=args.samples, temperature=1.0,
                                 max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        counter = iter(range(10**6))
        results = interleaved({
            "raw": lambda: raw(generator, problems, params, args.batch_size),
            "ours": lambda: ours(generator, problems, settings, None),
            "cold cache": lambda: ours(generator, problems, settings, Path(tmp) / f"c{next(counter)}"),
        }, args.repeats)
        (base_s, base_tokens), (ours_s, ours_tokens), (cached_s, cached_tokens) = results.values()
    print(f"{len(problems)} problems x {args.samples} samples, {args.batch_size} problems per batch "
          f"({args.batch_size * args.samples} sequences), max_new_tokens {args.max_new_tokens}, temperature 1, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {'CPU' if args.cpu else 'wall'} time, "
          f"load average {os.getloadavg()[0]:.1f}")
    rate = {name: tokens / seconds for name, tokens, seconds in
            (("raw", base_tokens, base_s), ("ours", ours_tokens, ours_s), ("cold cache", cached_tokens, cached_s))}
    print(f"raw generate + grade_batch: {rate['raw']:8.0f} tokens/s ({base_tokens} tokens, {base_s:.2f} s)")
    print(f"solve path, no cache:       {rate['ours']:8.0f} tokens/s ({ours_tokens} tokens, {ours_s:.2f} s)")
    print(f"solve path, cold cache:     {rate['cold cache']:8.0f} tokens/s ({cached_tokens} tokens, {cached_s:.2f} s)")
    print(f"solve path overhead (time per generated token vs raw): {100 * (rate['raw'] / rate['ours'] - 1):+.1f}% "
          f"without cache, {100 * (rate['raw'] / rate['cold cache'] - 1):+.1f}% with a cold cache")

if __name__ == "__main__":
    main()
