"""Sanity numbers: the evaluation pipeline grades known-correct and labelled solutions as expected."""

import json

import pytest

from reasonloop.evaluate import evaluate_attempts, load_suite, read_run, suite_problems
from reasonloop.records import Attempt


@pytest.fixture(scope="module")
def gsm8k(shared_data):
    path = shared_data / "gsm8k" / "test.jsonl"
    problems = suite_problems(load_suite("gsm8k"), data=str(path))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [p.question for p in problems] == [row["question"] for row in rows]
    return problems, rows


def test_gsm8k_reference_solutions_score_100_percent(gsm8k, tmp_path):
    problems, rows = gsm8k
    attempts = [Attempt(problem_id=p.id, prompt=p.question, completion=row["answer"], model="gsm8k-reference")
                for p, row in zip(problems, rows)]
    metrics = evaluate_attempts(attempts, "gsm8k", tmp_path / "ref", problems=problems, progress=False)
    print(f"GSM8K reference solutions: {100 * metrics['accuracy']:.1f}% of {metrics['n_problems']}")
    assert metrics["n_problems"] == 1319
    assert metrics["accuracy"] == 1.0, metrics["status_counts"]
    run = read_run(tmp_path / "ref", strict=True)
    assert len(run.verdicts) == 1319 and run.manifest["config"]["suite_problems_without_attempts"] == 0


@pytest.mark.parametrize("solution_set", ["175b_verification"])
def test_gpt3_solutions_score_what_their_labels_imply(gsm8k, shared_data, tmp_path, solution_set):
    problems, _ = gsm8k
    by_question = {p.question: p for p in problems}
    outputs = [json.loads(line) for line in (shared_data / "model-outputs" / "gsm8k_gpt3_solutions.jsonl").read_text().splitlines()]
    attempts, labels = [], []
    for row in outputs:
        problem = by_question[row["question"]]
        attempts.append(Attempt(problem_id=problem.id, prompt=problem.question, model=f"gpt3-{solution_set}",
                                completion=row[solution_set]["solution"]))
        labels.append(row[solution_set]["is_correct"])
    metrics = evaluate_attempts(attempts, "gsm8k", tmp_path / solution_set, problems=problems, progress=False)
    implied = sum(labels) / len(labels)
    print(f"GPT-3 {solution_set}: graded {100 * metrics['accuracy']:.2f}%, labels imply {100 * implied:.2f}%")
    assert metrics["n_problems"] == 1319
    assert abs(metrics["accuracy"] - implied) <= 0.003


def test_math500_reference_solutions_score_100_percent(shared_data, tmp_path):
    problems = suite_problems(load_suite("math500"), data=str(shared_data / "math500" / "test.jsonl"))
    attempts = [Attempt(problem_id=p.id, prompt=p.question, completion=p.solution) for p in problems]
    metrics = evaluate_attempts(attempts, "math500", tmp_path / "ref", problems=problems, progress=False)
    assert metrics["n_problems"] == 500 and metrics["accuracy"] == 1.0, metrics["status_counts"]
