"""Throughput of the synthesis filters (questions/s) beside a naive pairwise Jaccard dedup.

    python benchmarks/bench_synth_filters.py [--per-template 20]

Two question sets: built-in template instances (all 78 templates, shuffled: almost all
near-duplicates, so few are kept), and mostly distinct questions spliced from two templates
(the opening sentences of one instance, the last sentence of another). Ours: the format filter,
MinHash LSH dedup on skeletons (datasketch), decontamination against a 500-question set.
Baseline: exact Jaccard of every question against every kept one on the same skeleton shingles
(what the LSH replaces). Both run in this process on the same questions.
"""

from __future__ import annotations

import argparse
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-template", type=int, default=20)
    args = parser.parse_args()

    from reasonloop.sources.templates.builtin import builtin_problems

    instances = builtin_problems(args.per_template, seed=3)
    random.Random(0).shuffle(instances)
    heldout = builtin_problems(7, seed=99)[:500]
    measure("template instances", instances, heldout)
    measure("spliced, mostly distinct", spliced(instances, len(instances)), heldout)


def spliced(problems, count: int):
    from reasonloop.records import Problem

    rng = random.Random(1)
    out = []
    for _ in range(count):
        head, tail = rng.sample(problems, 2)
        opening = head.question.rsplit(". ", 1)[0]
        out.append(Problem(question=f"{opening}. {tail.question.rsplit('. ', 1)[-1]}", answer=""))
    return out


def measure(label: str, questions, heldout) -> None:
    from reasonloop.sources.synth.filters import (decontaminate_filter, dedup_filter, format_filter,
                                                  pairwise_jaccard_dedup)

    n = len(questions)

    started = time.perf_counter()
    formatted = format_filter(questions)
    format_s = time.perf_counter() - started
    started = time.perf_counter()
    deduped = dedup_filter(questions)
    dedup_s = time.perf_counter() - started
    started = time.perf_counter()
    decontaminate_filter(questions, {"heldout": heldout})
    decon_s = time.perf_counter() - started
    started = time.perf_counter()
    baseline = pairwise_jaccard_dedup(questions)
    baseline_s = time.perf_counter() - started

    print(f"{label}: {n} questions")
    print(f"format filter:                 {n / format_s:10.0f} questions/s  (kept {formatted.counts['kept']})")
    print(f"decontamination (500 items):   {n / decon_s:10.0f} questions/s")
    print(f"dedup, MinHash LSH (ours):     {n / dedup_s:10.0f} questions/s  (kept {deduped.counts['kept']})")
    print(f"dedup, pairwise Jaccard:       {n / baseline_s:10.0f} questions/s  (kept {len(baseline)})")
    print(f"ratio (ours / baseline):       {baseline_s / dedup_s:10.2f}x")


if __name__ == "__main__":
    main()
