"""Verifier throughput and agreement against plain math-verify, measured in the same run.

10,000 (completion, reference) pairs: half MATH-500 LaTeX answers, half GSM8K numbers; in
each half, half are equivalent (rewritten forms of the reference) and half are not (another
problem's answer, in a rewritten form too). Both sides get the same completion text
(`The answer is $\\boxed{...}$.`) and the same reference. Baseline: math-verify's
`parse` + `verify` per pair, in this process. Ours: `grade_batch` (extraction, fast path,
math-verify in the worker pool for what the fast path leaves). Both are warmed up first
(imports, the pool's workers), so the timings count grading only.

Then two more measures (`--long` pairs, default 500, and always the pathological six):

- long real text: each MATH-500 problem's full worked solution is the completion, its last
  `\\boxed{}` rewritten into another form of the same answer (half the problems) or into a
  form of another problem's answer (the other half); every pair is distinct, so no cache
  helps. math-verify parses the whole completion (as it is used on model output); ours is
  `grade_batch`. Both warmed. Prints the ratio and the share the fast path decided.
- six pathological answers with the default settings (timeout 5 s per item): the time to
  grade all six in a fresh pool, and their statuses.

    flock /tmp/rl-heavy.lock env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_verify.py
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from verify_rewrites import rewrites  # noqa: E402

from reasonloop.text import gsm8k_final_answer  # noqa: E402
from reasonloop.verify import grade_batch  # noqa: E402
from reasonloop.verify.normalize import closing_index  # noqa: E402
from reasonloop.verify.pool import shared_pool  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def number_forms(value: str) -> dict[str, str]:
    """A GSM8K number as a model might write it, by rule name."""
    number = float(value)
    whole = number.is_integer()
    grouped = f"{int(number):,}" if whole else f"{number:,}"
    return {
        "as is": value,
        "thousands separators": grouped,
        "dollar sign": f"\\${value}",
        "trailing zeros": f"{value}.00" if whole else value + "0",
        "\\mbox{} unit": f"{value}\\mbox{{ dollars}}",
        "x = prefix": f"x = {value}",
        "\\text{} unit": f"{value}\\text{{ apples}}",
        "dollars with cents": f"\\$ {grouped}.00" if whole else f"\\$ {grouped}",
    }


Row = tuple[str, str, str, str, bool]  # (source, rule, prediction, reference, equivalent)


def cycle_to(rows: list, count: int) -> list:
    return [rows[index % len(rows)] for index in range(count)] if rows else []


def math_pairs(data: Path, count: int, rng: random.Random) -> list[Row]:
    answers = [row["answer"] for row in read_jsonl(data / "math500/test.jsonl")]
    equivalent = {(rule, form, answer) for answer in answers for rule, form in rewrites(answer)}
    equivalent |= {(f"{rule} + {rule2}", form2, answer) for answer in answers for rule, form in rewrites(answer)
                   for rule2, form2 in rewrites(form)}
    equivalent = sorted(equivalent)
    rng.shuffle(equivalent)
    different = []
    while len(different) < count // 2:
        answer, other = rng.choice(answers), rng.choice(answers)
        if other.replace(" ", "") != answer.replace(" ", ""):
            rule, form = rng.choice(rewrites(other) + [("as is", other)])
            different.append((f"other answer, {rule}", form, answer))
    return ([("math500", *row, True) for row in cycle_to(equivalent, count // 2)]
            + [("math500", *row, False) for row in different])


def gsm8k_pairs(data: Path, count: int, rng: random.Random) -> list[Row]:
    answers = [gsm8k_final_answer(row["answer"]) for name in ("test", "train")
               for row in read_jsonl(data / f"gsm8k/{name}.jsonl")]
    rows = []
    for index in range(count):
        answer = rng.choice(answers)
        shown, equivalent = answer, index % 2 == 0
        if not equivalent:
            shown = rng.choice([a for a in rng.sample(answers, 5) if float(a) != float(answer)] or [answer + "1"])
        rule, form = rng.choice(sorted(number_forms(shown).items()))
        rows.append(("gsm8k", rule if equivalent else f"other answer, {rule}", form, answer, equivalent))
    return rows


def replace_last_boxed(solution: str, answer: str) -> str | None:
    start = solution.rfind("\\boxed{")
    if start < 0:
        return None
    end = closing_index(solution, start + len("\\boxed"))
    return None if end < 0 else solution[:start] + "\\boxed{" + answer + "}" + solution[end + 1:]


def long_pairs(data: Path, count: int, rng: random.Random) -> list[Row]:
    """(source, rule, completion = a full worked solution with its box rewritten, reference, equivalent)."""
    rows = read_jsonl(data / "math500/test.jsonl")
    chosen = rng.sample(rows, min(count, len(rows)))
    pairs: list[Row] = []
    for index, row in enumerate(chosen):
        equivalent = index % 2 == 0
        source = row if equivalent else rng.choice([other for other in rows if other["answer"] != row["answer"]])
        rule, form = rng.choice(rewrites(source["answer"]) or [("as is", source["answer"])])
        completion = replace_last_boxed(row["solution"], form)
        if completion is not None:
            pairs.append(("math500 solution", rule if equivalent else f"other answer, {rule}", completion,
                          row["answer"], equivalent))
    return pairs


def long_text_benchmark(data: Path, count: int, rng: random.Random) -> None:
    labelled = long_pairs(data, count, rng)
    pairs = [(row[2], row[3]) for row in labelled]
    assert len(set(pairs)) == len(pairs), "pairs must be distinct"
    started = time.perf_counter()
    baseline = run_math_verify(pairs)
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    verdicts = grade_batch(pairs)
    ours_seconds = time.perf_counter() - started
    fast = sum(not v.reason.startswith("math-verify") and "grader" not in v.reason for v in verdicts)
    chars = sum(len(completion) for completion, _ in pairs) / len(pairs)
    for name, answers in (("math-verify", baseline), ("reasonloop", [v.correct for v in verdicts])):
        right = sum(answer == row[4] for row, answer in zip(labelled, answers))
        print(f"  long text, matches the construction label: {name} {right / len(pairs):.1%}")
    print(f"long text ({len(pairs)} MATH-500 worked solutions, {chars:,.0f} chars on average, all distinct): "
          f"math-verify {baseline_seconds:.2f} s, reasonloop {ours_seconds:.2f} s: "
          f"{baseline_seconds / ours_seconds:.1f}x; fast path decided {fast}/{len(pairs)} ({fast / len(pairs):.0%})")


PATHOLOGICAL = {
    "10^{10^{10^{10}}}": "\\boxed{10^{10^{10^{10}}}}",
    "a million digits": "\\boxed{" + "7" * 1_000_000 + "}",
    "10,000 open braces": "\\boxed{" + "{" * 10_000 + "}",
    "unclosed \\boxed{": "The result is \\boxed{12",
    "control bytes": "\\boxed{\x00\x01\x1b[2J5\x07}",
    "empty string": "",
}


def pathological_benchmark() -> None:
    """Graded first, in a fresh process state: the time includes whatever waiting the defaults cause."""
    started = time.perf_counter()
    verdicts = grade_batch([(completion, "12") for completion in PATHOLOGICAL.values()])
    seconds = time.perf_counter() - started
    statuses = ", ".join(f"{name}: {v.status}" for name, v in zip(PATHOLOGICAL, verdicts))
    print(f"six pathological answers, default settings (timeout 5 s each): {seconds:.2f} s in total ({statuses})")


def run_math_verify(pairs: list[tuple[str, str]]) -> list[bool]:
    from math_verify import parse, verify

    return [verify(parse(f"${reference}$"), parse(completion)) for completion, reference in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long", type=int, default=500, help="MATH-500 worked solutions as completions")
    args = parser.parse_args()
    pathological_benchmark()
    rng = random.Random(args.seed)
    half = args.pairs // 2
    labelled = math_pairs(args.data, half, rng) + gsm8k_pairs(args.data, args.pairs - half, rng)
    pairs = [(f"The answer is $\\boxed{{{row[2]}}}$.", row[3]) for row in labelled]
    kinds = Counter(f"{row[0]} {'equivalent' if row[4] else 'different'}" for row in labelled)
    print(f"{len(pairs)} pairs ({len(set(pairs))} distinct): {dict(kinds)}")

    run_math_verify(pairs[:20])                              # warm-up: imports
    grade_batch([("\\boxed{\\binom{5}{2}}", "10")] * len(shared_pool().workers or [0]) * 2)  # warm-up: pool

    started = time.perf_counter()
    baseline = run_math_verify(pairs)
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    verdicts = grade_batch(pairs)
    ours_seconds = time.perf_counter() - started

    decided = [(row, mv, v) for row, mv, v in zip(labelled, baseline, verdicts) if v.status in ("correct", "incorrect")]
    disagreements = [(row, mv, v) for row, mv, v in decided if mv != v.correct]
    agreement = 1 - len(disagreements) / len(decided)
    fallback = sum(v.reason.startswith("math-verify") for v in verdicts)
    print(f"math-verify: {baseline_seconds:.2f} s ({len(pairs) / baseline_seconds:,.0f} pairs/s)")
    print(f"reasonloop:  {ours_seconds:.2f} s ({len(pairs) / ours_seconds:,.0f} pairs/s), "
          f"{fallback} pairs sent to math-verify, statuses {dict(Counter(v.status for v in verdicts))}")
    print(f"verifier throughput: {baseline_seconds / ours_seconds:.1f}x math-verify, "
          f"agreement {agreement:.1%} on {len(decided)} pairs both decide")
    for name, answers in (("math-verify", baseline), ("reasonloop", [v.correct for v in verdicts])):
        right = sum(answer == row[4] for row, answer in zip(labelled, answers))
        print(f"  matches the construction label (rewrite = equivalent): {name} {right / len(pairs):.1%}")
    categories = Counter(
        f"{row[0]}, {row[1]}: {'we say equal, math-verify not' if v.correct else 'math-verify says equal, we not'}"
        for row, mv, v in disagreements
    )
    print("disagreement categories:")
    for category, count in categories.most_common():
        print(f"  {count:5d}  {category}")
    shown = set()
    for row, mv, v in disagreements:
        if row[1] not in shown:  # one example per rule
            shown.add(row[1])
            print(f"    e.g. [{row[1]}] {row[2]!r} vs {row[3]!r}: math-verify {mv}, ours {v.status}")
    if args.long:
        long_text_benchmark(args.data, args.long, rng)


if __name__ == "__main__":
    main()
