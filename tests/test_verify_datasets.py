"""The verifier against data nobody here wrote: GPT-3 GSM8K labels and MATH-500 answers."""

import json
import sys
from pathlib import Path

import pytest

from reasonloop.verify import grade_batch

sys.path.insert(0, str(Path(__file__).parent))
from verify_rewrites import rewrites  # noqa: E402

SOLUTION_SETS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def gpt3_rows(shared_data):
    return read_jsonl(shared_data / "model-outputs/gsm8k_gpt3_solutions.jsonl")


@pytest.fixture(scope="module")
def math500(shared_data):
    return read_jsonl(shared_data / "math500/test.jsonl")


@pytest.mark.parametrize("solution_set", SOLUTION_SETS)
def test_gpt3_label_agreement(gpt3_rows, solution_set, capsys):
    references = [row["ground_truth"].rsplit("A:", 1)[1].strip() for row in gpt3_rows]
    verdicts = grade_batch([(row[solution_set]["solution"], ref) for row, ref in zip(gpt3_rows, references)])
    disagreements = [(index, verdict) for index, (row, verdict) in enumerate(zip(gpt3_rows, verdicts))
                     if verdict.correct != row[solution_set]["is_correct"]]
    agreement = 1 - len(disagreements) / len(gpt3_rows)
    with capsys.disabled():
        print(f"\n{solution_set}: agreement with labels {agreement:.2%} ({len(disagreements)} disagreements)")
        for index, verdict in disagreements:
            print(f"  row {index}: label {gpt3_rows[index][solution_set]['is_correct']}, {verdict.status}: {verdict.reason}")
    assert len(gpt3_rows) == 1319
    assert agreement >= 0.995


def test_math500_solutions_grade_correct(math500):
    verdicts = grade_batch([(row["solution"], row["answer"]) for row in math500])
    wrong = [(row["answer"], verdict.reason) for row, verdict in zip(math500, verdicts) if not verdict.correct]
    assert not wrong, wrong


def test_math500_rewritten_answers_grade_correct(math500, capsys):
    items = [(name, rewritten, row["answer"]) for row in math500 for name, rewritten in rewrites(row["answer"])]
    verdicts = grade_batch([(f"The answer is $\\boxed{{{rewritten}}}$.", answer) for _, rewritten, answer in items])
    exceptions = [(item, verdict) for item, verdict in zip(items, verdicts) if not verdict.correct]
    rules = {name for name, _, _ in items}
    with capsys.disabled():
        print(f"\nMATH-500 rewrites: {len(items) - len(exceptions)}/{len(items)} correct over rules {sorted(rules)}")
        for (name, rewritten, answer), verdict in exceptions:
            print(f"  [{name}] {rewritten!r} vs {answer!r}: {verdict.status} ({verdict.reason})")
    assert len(items) >= 1000
    assert len(rules) >= 8
    assert len(exceptions) <= 0.01 * len(items)


@pytest.mark.slow  # choosing the pairs runs math-verify on ~1,000 answers
def test_math500_other_problems_answers_grade_incorrect(math500, capsys):
    from math_verify import parse, verify

    pairs = []
    for index, row in enumerate(math500):
        for step in range(1, 20):  # the next other answer that math-verify also calls different
            other = math500[(index + step * 37) % len(math500)]["answer"]
            if other.replace(" ", "") != row["answer"].replace(" ", "") and not verify(
                parse(f"${row['answer']}$"), parse(f"${other}$")
            ):
                pairs.append((other, row["answer"]))
                break
    verdicts = grade_batch([(f"$\\boxed{{{other}}}$", answer) for other, answer in pairs])
    exceptions = [(pair, verdict) for pair, verdict in zip(pairs, verdicts) if verdict.status != "incorrect"]
    with capsys.disabled():
        print(f"\nMATH-500 other problems' answers: {len(pairs) - len(exceptions)}/{len(pairs)} incorrect")
        for (other, answer), verdict in exceptions:
            print(f"  {other!r} vs {answer!r}: {verdict.status} ({verdict.reason})")
    assert len(pairs) >= 490
    assert len(exceptions) <= 0.01 * len(pairs)
