"""Tiny model, batched sampling on CPU: reasonloop's hf backend against raw `model.generate`.

Same model (the default ~0.9M-parameter tiny Llama, tokenizer trained on template word
problems), same prompts, same batch size, same sampling (temperature 1, top_p 1), same
`max_new_tokens`, in the same process. Only real generated tokens count: tokens before the
first EOS of each row, never padding. Both sides are warmed up first; each side's time is
the median of `--repeats` runs.

    flock /tmp/rl-heavy.lock env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_generate.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: spinning collapses under contention

import torch  # noqa: E402

from reasonloop.models.base import SamplingParams  # noqa: E402
from reasonloop.models.hf import HFGenerator  # noqa: E402
from reasonloop.models.tiny import create_tiny_model  # noqa: E402

NAMES = ["Tom", "Ana", "Lee", "Mia", "Raj", "Zoe", "Sam", "Ivy"]
ITEMS = ["apples", "marbles", "books", "pencils", "cookies", "stickers"]


def problems(count: int) -> list[str]:
    texts = []
    for i in range(count):
        name, item, a, b = NAMES[i % 8], ITEMS[i % 6], 3 + (7 * i) % 90, 2 + (5 * i) % 40
        texts.append(f"Question: {name} has {a} {item} and buys {b} more. How many {item} now?\nAnswer: {a} + {b} = {a + b}\n#### {a + b}")
    return texts


def prompts(count: int) -> list[str]:
    return [text.split("\nAnswer:")[0] + "\nAnswer:" for text in problems(count)]


def raw_generate(gen: HFGenerator, batch: list[str], new_tokens: int) -> int:
    """Baseline: the tokenizer + `model.generate`; returns real generated tokens."""
    tok = gen.tokenizer
    inputs = tok(batch, return_tensors="pt", padding=True)
    out = gen.model.generate(
        **inputs, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
    )
    generated = out[:, inputs.input_ids.shape[1] :]
    is_eos = generated == tok.eos_token_id
    first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full((len(batch),), generated.shape[1]))
    return int(first_eos.sum())


def ours(gen: HFGenerator, batch: list[str], new_tokens: int, seed: int) -> int:
    results = gen.generate(batch, SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=new_tokens, seed=seed))
    return sum(c.tokens for row in results for c in row)


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gen = HFGenerator(create_tiny_model(tmp, problems(2000)), batch_size=args.batch)
    batch = prompts(args.batch)
    torch.manual_seed(0)
    raw_generate(gen, batch, 8), ours(gen, batch, 8, 0)  # warm-up
    raw_runs, our_runs = [], []
    for rep in range(args.repeats):  # interleaved, so drift in machine load hits both sides alike
        raw_runs.append(timed(lambda: raw_generate(gen, batch, args.new_tokens)))
        our_runs.append(timed(lambda: ours(gen, batch, args.new_tokens, rep)))
    raw_rate = statistics.median(tokens / seconds for seconds, tokens in raw_runs)
    our_rate = statistics.median(tokens / seconds for seconds, tokens in our_runs)
    print(
        f"tiny model batched sampling (batch {args.batch}, {args.new_tokens} new tokens, {torch.get_num_threads()} threads): "
        f"reasonloop hf {our_rate:,.0f} tok/s, raw model.generate {raw_rate:,.0f} tok/s, "
        f"ratio {our_rate / raw_rate:.2f}x (overhead {100 * (raw_rate / our_rate - 1):+.1f}%)"
    )


if __name__ == "__main__":
    main()
