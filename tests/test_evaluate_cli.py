import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from reasonloop.cli import app
from reasonloop.errors import ReasonloopError
from reasonloop.evaluate import load_suite, suite_problems
from reasonloop.records import Attempt, write_records

runner = CliRunner()


def test_unknown_suite_is_one_line_and_exit_1():
    result = subprocess.run([sys.executable, "-m", "reasonloop.cli", "eval", "--suite", "gsm9k", "--model", "m",
                             "-o", "runs/x"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown suite 'gsm9k'; known suites: ")
    assert "gsm8k" in lines[0] and "builtin-heldout" in lines[0]


def test_eval_needs_a_model_or_attempts(tmp_path):
    result = runner.invoke(app, ["eval", "--suite", "gsm8k", "-o", str(tmp_path / "run")])
    assert isinstance(result.exception, ReasonloopError)
    assert "exactly one of --model" in str(result.exception)
    result = runner.invoke(app, ["eval", "--suite", "gsm8k", "--model", "m", "--strategy", "best", "-o", "x"])
    assert "unknown strategy 'best'" in str(result.exception)


@pytest.fixture()
def gsm8k_path(shared_data):
    return str(shared_data / "gsm8k" / "test.jsonl")


def test_eval_grades_existing_attempts(tmp_path, gsm8k_path):
    problems = suite_problems(load_suite("gsm8k"), data=gsm8k_path, limit=10)
    attempts = [Attempt(problem_id=p.id, prompt=p.question, completion=f"The answer is {p.answer if i % 2 else 0}.",
                        sample_index=0) for i, p in enumerate(problems)]
    write_records(tmp_path / "attempts.jsonl", attempts)
    result = runner.invoke(app, ["eval", "--attempts", str(tmp_path / "attempts.jsonl"), "--suite", "gsm8k",
                                 "--data", gsm8k_path, "-o", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["n_problems"] == 10 and metrics["accuracy"] == 0.5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["suite_problems_without_attempts"] == 1309
    table = runner.invoke(app, ["eval", "--attempts", str(tmp_path / "attempts.jsonl"), "--suite", "gsm8k",
                                "--data", gsm8k_path, "-o", str(tmp_path / "run")])
    assert "50.0%" in table.output and "run written to" in table.output


def test_contamination_and_decontaminate_commands(tmp_path, gsm8k_path):
    problems = suite_problems(load_suite("gsm8k"), data=gsm8k_path)
    rows = [{"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "7"},
            {"question": problems[5].question, "answer": problems[5].answer},
            {"text": "Some preamble. " + problems[900].question}]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    listed = runner.invoke(app, ["contamination", str(train), "--suite", "gsm8k", "--data", gsm8k_path])
    assert listed.exit_code == 0, listed.output
    assert f"train.jsonl:2  gsm8k/{problems[5].id}" in listed.output
    assert "2 of 3 training rows overlap (gsm8k: 2 items)" in listed.output
    clean = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["decontaminate", str(train), "--suite", "gsm8k", "--data", gsm8k_path,
                                 "-o", str(clean), "--ngram", "8"])
    assert result.exit_code == 0, result.output
    assert "removed 2 of 3 rows" in result.output
    assert clean.read_text() == json.dumps(rows[0]) + "\n"
