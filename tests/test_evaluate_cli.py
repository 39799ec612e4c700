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


def refusal(args):
    """The error an `eval`-family command stops with (none: the test fails)."""
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ReasonloopError), result.output
    return str(result.exception)


def test_data_is_refused_for_a_suite_whose_source_ignores_it(tmp_path, gsm8k_path):
    expected = (f"suite 'builtin-heldout' takes its problems from its own 'builtin' source, which does not read "
                f"--data, so {gsm8k_path} would be ignored; leave --data out or choose a suite whose source kind "
                f"is one of: dataset, templates")
    # refused before the (here nonexistent) model is loaded and before anything is written
    assert refusal(["eval", "--suite", "builtin-heldout", "--data", gsm8k_path, "--model", "no-such-model",
                    "-o", str(tmp_path / "run")]) == expected
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="x", prompt="q", completion="\\boxed{1}")])
    assert refusal(["eval", "--suite", "builtin-heldout", "--data", gsm8k_path, "--attempts",
                    str(tmp_path / "attempts.jsonl"), "-o", str(tmp_path / "run")]) == expected
    assert refusal(["contamination", str(tmp_path / "attempts.jsonl"), "--suite", "builtin-heldout",
                    "--data", gsm8k_path]) == expected
    assert not (tmp_path / "run").exists()
    with pytest.raises(ReasonloopError, match="does not read --data"):
        suite_problems(load_suite("builtin-heldout:rename"), data=gsm8k_path)


def test_generation_options_are_refused_when_grading_existing_attempts(tmp_path):
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="x", prompt="q", completion="\\boxed{1}")])
    base = ["eval", "--suite", "builtin-heldout", "--attempts", str(tmp_path / "attempts.jsonl"),
            "-o", str(tmp_path / "run")]
    assert refusal(base + ["--n", "4"]) == (
        "--n only apply when generating with --model; --attempts grades completions that already exist (leave it out)")
    assert refusal(base + ["--limit", "5", "--backend", "hf", "--batch-size", "8"]) == (
        "--limit, --backend, --batch-size only apply when generating with --model; --attempts grades completions "
        "that already exist (leave them out)")
    assert not (tmp_path / "run").exists()


def test_several_samples_are_refused_for_greedy_before_the_model_loads(tmp_path):
    message = refusal(["eval", "--suite", "builtin-heldout", "--model", "no-such-model", "--n", "4",
                       "-o", str(tmp_path / "run")])
    assert "greedy draws one sample per problem; use sample or majority for" in message and "4" in message


def bare_number_attempts(path, problems):
    """Half the completions stop on the right number with no final-answer marker, half say it in final form."""
    attempts = [Attempt(problem_id=p.id, prompt=p.question,
                        completion=f"so it is {p.answer}" if i % 2 else f"so it is {p.answer}\n#### {p.answer}",
                        sample_index=0) for i, p in enumerate(problems)]
    write_records(path, attempts)


def test_eval_counts_only_final_answers_unless_last_number_fallback(tmp_path, gsm8k_path):
    bare_number_attempts(tmp_path / "attempts.jsonl", suite_problems(load_suite("gsm8k"), data=gsm8k_path, limit=10))
    base = ["eval", "--attempts", str(tmp_path / "attempts.jsonl"), "--suite", "gsm8k", "--data", gsm8k_path, "--json"]
    strict = runner.invoke(app, base + ["-o", str(tmp_path / "strict")])
    assert strict.exit_code == 0, strict.output
    assert json.loads(strict.stdout)["accuracy"] == 0.5
    assert json.loads(strict.stdout)["status_counts"]["no_answer"] == 5


def test_eval_last_number_fallback_counts_bare_numbers(tmp_path, gsm8k_path):
    bare_number_attempts(tmp_path / "attempts.jsonl", suite_problems(load_suite("gsm8k"), data=gsm8k_path, limit=10))
    lenient = runner.invoke(app, ["eval", "--attempts", str(tmp_path / "attempts.jsonl"), "--suite", "gsm8k",
                                  "--data", gsm8k_path, "--json", "--last-number-fallback", "-o", str(tmp_path / "run")])
    assert lenient.exit_code == 0, lenient.output
    assert json.loads(lenient.stdout)["accuracy"] == 1.0
    verdicts = [json.loads(line) for line in (tmp_path / "run" / "verdicts.jsonl").read_text().splitlines()]
    assert sorted((v["rule"], v["verifier"].endswith("+last-number")) for v in verdicts) == (
        [("final-form", True)] * 5 + [("last-number", True)] * 5)


def test_an_unknown_option_is_a_usage_error_not_a_traceback():
    result = subprocess.run([sys.executable, "-m", "reasonloop.cli", "eval", "--model", "m", "--temperature", "0.6"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "No such option: --temperature" in result.stderr and "Traceback" not in result.stderr
