"""Many continuations of one prefix (PRM labels, beam, MCTS): the hf backend prefilling each
distinct prompt once and copying its KV cache, against recomputing the prefix for every row.

Same model, prompts, seeds and sampling on both sides, in the same process (the baseline is
the same generator with `reuse_prefix = False`); both warmed up; each side's time is the
median of `--repeats` runs. Continuations are short (a step: up to `--new` tokens), the
prefix long (a question and a partial solution, `--prefix-lines` lines), as in step search.

    OMP_NUM_THREADS=2 python benchmarks/bench_prefix.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from reasonloop.models.base import SamplingParams
from reasonloop.models.hf import HFGenerator
from reasonloop.models.tiny import TinyConfig, create_tiny_model


def corpus(count: int) -> list[str]:
    return [f"Question: Tom has {i} apples and buys {2 * i} more.\nAnswer: {i} + {2 * i} = {3 * i} apples.\n#### {3 * i}"
            for i in range(count)]


def timed(generator: HFGenerator, prompts: list[str], params: SamplingParams, repeats: int) -> float:
    generator.generate(prompts, params)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        generator.generate(prompts, params)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=4)
    parser.add_argument("--n", type=int, default=16, help="continuations per prefix")
    parser.add_argument("--new", type=int, default=16, help="max new tokens per continuation")
    parser.add_argument("--prefix-lines", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = create_tiny_model(f"{tmp}/model", corpus(200), TinyConfig(max_positions=512), seed=0)
        generator = HFGenerator(model, batch_size=args.prefixes * args.n)
        steps = "".join(f" {i} + {i} = {2 * i} apples.\n" for i in range(1, args.prefix_lines + 1))
        prompts = [f"Question: Tom has {p} apples and buys {2 * p} more.\nAnswer:{steps}" for p in range(args.prefixes)]
        tokens = generator.count_tokens(prompts[0])
        params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=args.new, seed=1)
        generator.reuse_prefix = False
        baseline = timed(generator, prompts, params, args.repeats)
        generator.reuse_prefix = True
        ours = timed(generator, prompts, params, args.repeats)
    count = args.prefixes * args.n
    print(f"{args.prefixes} prefixes of {tokens} tokens x {args.n} continuations of <= {args.new} tokens, batch {count}")
    print(f"recompute prefix : {count / baseline:8.1f} continuations/s ({baseline:.3f} s)")
    print(f"reuse prefix     : {count / ours:8.1f} continuations/s ({ours:.3f} s)")
    print(f"ratio            : {baseline / ours:.2f}x")


if __name__ == "__main__":
    main()
