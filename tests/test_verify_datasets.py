"""The verifier against data nobody here wrote: GPT-3 GSM8K labels and MATH-500 answers."""

import json
import re
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


def last_boxed_span(text: str) -> tuple[int, int]:
    """(start, end) of the content of the last `\\boxed{...}` in `text` (braces balanced)."""
    start = text.rindex("\\boxed{") + len("\\boxed{")
    depth = 1
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return start, end
    raise ValueError(f"unbalanced \\boxed{{ in {text[-80:]!r}")


def with_boxed(solution: str, answer: str) -> str:
    start, end = last_boxed_span(solution)
    return solution[:start] + answer + solution[end:]


def wrong_answer(answer: str) -> str:
    """A near miss that is never equal: the first integer in the answer plus one (`\\frac{3}{4}` ->
    `\\frac{4}{4}`, `864 \\mbox{ inches}^2` -> `865 ...`: the number, not a unit's power, which the
    grader leaves out); without digits, another text or `+ 1`."""
    first = re.search(r"\d+", answer)
    if first:
        return answer[:first.start()] + str(int(first.group()) + 1) + answer[first.end():]
    return "\\text{none of these}" if "\\text{" in answer else answer + " + 1"


def test_math500_solutions_box_their_answer_verbatim(math500):
    """The premise of the tests below: grading a solution as written tests extraction only."""
    assert len(math500) == 500
    assert all(row["solution"][slice(*last_boxed_span(row["solution"]))] == row["answer"] for row in math500)
    verdicts = grade_batch([(row["solution"], row["answer"]) for row in math500])
    assert [verdict.status for verdict in verdicts] == ["correct"] * 500


def test_math500_solutions_with_their_answer_rewritten_grade_as_the_bare_answer(math500, capsys):
    """Each solution with its boxed answer in another form grades correct, exactly as the
    rewritten answer does on its own (the solution's text around it changes nothing)."""
    items = [(name, row, rewritten) for row in math500 for name, rewritten in rewrites(row["answer"])]
    in_solutions = grade_batch([(with_boxed(row["solution"], rewritten), row["answer"]) for _, row, rewritten in items])
    bare = grade_batch([(f"The answer is $\\boxed{{{rewritten}}}$.", row["answer"]) for _, row, rewritten in items])
    exceptions = [(name, rewritten, row["answer"], verdict) for (name, row, rewritten), verdict in zip(items, in_solutions)
                  if not verdict.correct]
    with capsys.disabled():
        print(f"\nMATH-500 solutions, boxed answer rewritten: {len(items) - len(exceptions)}/{len(items)} correct")
        for name, rewritten, answer, verdict in exceptions:
            print(f"  [{name}] {rewritten!r} vs {answer!r}: {verdict.status} ({verdict.reason})")
    assert len(items) >= 1000 and len({name for name, _, _ in items}) >= 8
    assert [v.status for v in in_solutions] == [v.status for v in bare]
    assert len(exceptions) <= 0.01 * len(items)


def test_math500_solutions_with_a_wrong_answer_grade_incorrect(math500, capsys):
    items = [(row, wrong_answer(row["answer"])) for row in math500]
    verdicts = grade_batch([(with_boxed(row["solution"], wrong), row["answer"]) for row, wrong in items])
    exceptions = [(wrong, row["answer"], verdict) for (row, wrong), verdict in zip(items, verdicts)
                  if verdict.status != "incorrect"]
    with capsys.disabled():
        print(f"\nMATH-500 solutions, boxed answer made wrong: {len(items) - len(exceptions)}/{len(items)} incorrect")
        for wrong, answer, verdict in exceptions:
            print(f"  {wrong!r} vs {answer!r}: {verdict.status} ({verdict.reason})")
    assert exceptions == []


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
