"""Extraction, grading statuses, bad input, the worker pool, the reward function and the CLI."""

import json
import os
import subprocess
import sys
import time

import pytest

from reasonloop.records import Attempt, Problem, Verdict, read_records, write_records
from reasonloop.verify import VERIFIER_VERSION, extract_answer, grade, grade_batch
from reasonloop.verify.pool import GraderPool, close_shared_pool, shared_pool
from reasonloop.verify.reward import make_reward_function


@pytest.mark.parametrize("completion, expected", [
    ("so $\\boxed{\\frac{1}{2}}$ and later \\boxed{3}", "3"),                  # last box wins
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),                 # nested braces
    ("\\fbox{7}", "7"),
    ("step\n#### 1,234", "1,234"),
    ("The answer is $42$.", "42"),
    ("So the final answer is: 18 dollars. Then we rest.", "18 dollars"),
    ("**Answer:** 0.5", "0.5"),
    ("She pays 3 * 4 = 12\nA: 12", "12"),
    ("The answer is 3.5.", "3.5"),
    ("\\boxed{}\nA: 4", "4"),                                              # an empty box is no answer
])
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_an_answer_counts_only_in_final_form_by_default():
    text = "She has 3 apples, then 5 more, so 8"                      # stops on the right number, no marker
    assert extract_answer(text) is None
    verdict = grade(text, "8")
    assert verdict.status == "no_answer" and verdict.rule is None and verdict.marker is None
    assert verdict.verifier == f"reasonloop-verify {VERIFIER_VERSION}"
    assert grade_batch([(text, "8")])[0].status == "no_answer"


def test_last_number_fallback_is_opt_in_for_numeric_references():
    text = "She has 3 apples, then 5 more, so 8"
    assert extract_answer(text, last_number_fallback=True) == "8"
    verdict = grade(text, "8", last_number_fallback=True)
    assert (verdict.status, verdict.extracted, verdict.rule, verdict.marker) == ("correct", "8", "last-number", "last number")
    assert verdict.verifier == f"reasonloop-verify {VERIFIER_VERSION}+last-number"
    assert grade(text, "\\frac{1}{2}", last_number_fallback=True).status == "no_answer"    # MATH-style reference
    assert grade(text, "8", kind="math", last_number_fallback=True).status == "no_answer"
    assert grade("so 1/2 of it: 3", "\\frac{1}{2}", kind="numeric", last_number_fallback=True).extracted == "3"
    # a final-form marker still wins over the fallback, and says so
    boxed = grade("5 and 8, so \\boxed{5}", "8", last_number_fallback=True)
    assert (boxed.status, boxed.rule, boxed.marker) == ("incorrect", "final-form", "\\boxed")


@pytest.mark.parametrize("completion, marker", [
    ("so \\boxed{8}", "\\boxed"), ("3 + 5 = 8\n#### 8", "####"), ("The answer is 8.", "answer is"),
    ("Answer: 8", "answer is"), ("She has 8.\nA: 8", "A:"),
])
def test_verdict_names_the_final_form_marker(completion, marker):
    verdict = grade(completion, "8")
    assert (verdict.status, verdict.rule, verdict.marker) == ("correct", "final-form", marker)


def test_math_verify_verdicts_keep_the_rule_and_marker():
    hard = grade("\\boxed{\\gcd(12, 18)}", "6")
    assert (hard.status, hard.rule, hard.marker) == ("correct", "final-form", "\\boxed")
    assert hard.reason.startswith("math-verify")


def test_verdicts_written_before_the_rule_field_still_load(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"status": "correct", "extracted": "8", "reference": "8", "reason": "8 equals 8",
                                "verifier": "reasonloop-verify 1.0"}) + "\n")
    old = read_records(path, Verdict).records[0]
    assert (old.status, old.rule, old.marker) == ("correct", None, None)


def test_verdicts_carry_status_reason_and_version():
    verdict = grade("so \\boxed{0.5}", "\\frac{1}{2}")
    assert isinstance(verdict, Verdict) and verdict.status == "correct"
    assert verdict.extracted == "0.5" and verdict.reference == "\\frac{1}{2}"
    assert verdict.verifier == f"reasonloop-verify {VERIFIER_VERSION}" and "\n" not in verdict.reason
    wrong = grade("\\boxed{0.4}", "\\frac{1}{2}")
    assert wrong.status == "incorrect" and "0.4" in wrong.reason


def test_reference_may_be_a_worked_solution():
    assert grade("\\boxed{18}", "She makes 9 * 2 = 18\n#### 18").correct
    assert grade("\\boxed{\\frac{1}{4}}", "so the probability is $\\boxed{\\frac14}$.").correct


def test_hard_cases_go_to_math_verify():
    verdict = grade("\\boxed{\\gcd(12, 18)}", "6")
    assert verdict.status == "correct" and verdict.reason.startswith("math-verify")


def test_grade_batch_preserves_order_across_fast_and_slow_paths():
    items = [("\\boxed{\\gcd(12, 18)}", "6"), ("\\boxed{2}", "2"), ("\\boxed{\\lfloor 3.7 \\rfloor}", "4"), ("nothing", "3")]
    statuses = [verdict.status for verdict in grade_batch(items, workers=2)]
    assert statuses == ["correct", "correct", "incorrect", "no_answer"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        grade("\\boxed{1}", "1", kind="chemistry")
    with pytest.raises(ValueError, match="timeout"):
        grade("\\boxed{1}", "1", timeout=0)
    assert grade("\\boxed{1}", "").status == "error"


PATHOLOGICAL = {
    "power tower": "\\boxed{10^{10^{10^{10}}}}",
    "1 MB of digits": "1" * 1_000_000,
    "1 MB of digits boxed": "\\boxed{" + "7" * 1_000_000 + "}",
    "10,000 nested braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "unterminated box": "the answer is \\boxed{12",
    "binary junk": bytes(range(256)).decode("latin-1") * 50,
    "empty": "",
    "nested fractions": "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_inputs_return_within_the_timeout(name):
    started = time.monotonic()
    verdict = grade(PATHOLOGICAL[name], "5", timeout=1.0)
    assert time.monotonic() - started < 1.0 + 2.0  # the timeout plus kill grace and slack for a loaded machine
    assert verdict.status in ("timeout", "no_answer", "error", "incorrect"), verdict
    assert grade("\\boxed{\\gcd(12, 18)}", "6").correct  # the pool keeps serving


# A worker with SIGALRM blocked stands for code the alarm cannot interrupt (a C-level computation).
DEAF_WORKER = ("import signal, sys; from reasonloop.verify import worker; "
               "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM}); worker.main(sys.argv[1:])")


def test_pool_kills_a_stuck_worker_and_keeps_serving():
    pool = GraderPool(1, worker_command=DEAF_WORKER)
    try:
        started = time.monotonic()
        outcomes = pool.run([("10^{10^{10^{10}}}", "1"), ("\\gcd(12, 18)", "6")], timeout=0.5)
        assert outcomes[0][0] == "timeout" and "killed" in outcomes[0][1]
        assert outcomes[1][0] == "correct"  # served by the replacement worker
        assert time.monotonic() - started < 30
        first_worker_pid = pool.workers[0].process.pid
        assert pool.run([("\\max(2, 5)", "5")], timeout=2.0)[0][0] == "correct"
        assert pool.workers[0].process.pid == first_worker_pid  # reused, not restarted
    finally:
        pool.close()
    assert not pool.workers


def test_alarm_stops_math_verify_without_a_kill():
    pool = shared_pool()
    outcome = pool.run([("10^{10^{10^{10}}}", "1")], timeout=0.5)[0]
    pids = {worker.process.pid for worker in pool.workers}
    assert outcome == ("timeout", "math-verify gave up after 0.5 s")
    assert pool.run([("\\max(2, 5)", "5")], timeout=5.0)[0][0] == "correct"
    assert {worker.process.pid for worker in pool.workers} == pids  # same workers: nobody was killed


def test_no_eval_in_the_verifier():
    """Model output and data are never evaluated in-process; the one `exec` is the sandbox's fork
    server running a model's program in its isolated child (docs/sandbox.md)."""
    import pathlib

    import reasonloop.verify as package

    sandboxed = {"_forkserver.py"}
    for path in pathlib.Path(package.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "eval(" not in source.replace("numeric(", "").replace("_eval", ""), path
        assert ("exec(" in source) == (path.name in sandboxed), path


def test_reward_function_for_trl():
    reward = make_reward_function(format_weight=0.1)
    assert reward.__name__ == "verifier_reward" and reward.verifier_version.endswith(VERIFIER_VERSION)
    completions = ["\\boxed{4}", [{"role": "assistant", "content": "The answer is 5"}], "no idea", "\\boxed{3}"]
    scores = reward(["p"] * 4, completions, answer=["4", "5", "4", "4"], trainer_state=None)
    assert scores == pytest.approx([1.1, 1.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="answer"):
        reward(["p"], ["\\boxed{1}"], solution=["1"])


def test_reward_is_none_when_the_grader_gives_up():
    reward = make_reward_function(timeout=0.3)
    # (a power tower such as 10^{10^{10^{10}}} is decided by the fast path now: it is not 1)
    assert reward(["p"], ["\\boxed{(10^{10})!}"], answer=["1"]) == [None]


def run_cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "reasonloop.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_writes_verdicts_with_ids_and_prints_a_summary(tmp_path):
    problems = [Problem(id="p1", question="1+1?", answer="2"), Problem(id="p2", question="half?", answer="\\frac12")]
    attempts = [Attempt(problem_id="p1", prompt="q", completion="\\boxed{2}", sample_index=0),
                Attempt(problem_id="p1", prompt="q", completion="\\boxed{3}", sample_index=1),
                Attempt(problem_id="p2", prompt="q", completion="it is 0.5", sample_index=0)]
    write_records(tmp_path / "problems.jsonl", problems)
    write_records(tmp_path / "attempts.jsonl", attempts)
    result = run_cli("verify", str(tmp_path / "attempts.jsonl"), "-o", str(tmp_path / "verdicts.jsonl"), "--json",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["correct"] == 1 and summary["counts"]["incorrect"] == 1
    assert summary["counts"]["no_answer"] == 1 and summary["accuracy"] == pytest.approx(1 / 3)
    verdicts = read_records(tmp_path / "verdicts.jsonl", Verdict).records
    assert [(v.problem_id, v.sample_index, v.status) for v in verdicts] == [
        ("p1", 0, "correct"), ("p1", 1, "incorrect"), ("p2", 0, "no_answer")]
    table = run_cli("verify", str(tmp_path / "attempts.jsonl"), "-o", str(tmp_path / "v2.jsonl"), cwd=tmp_path)
    assert table.returncode == 0 and "accuracy 33.3%" in table.stdout and "no_answer" in table.stdout


def test_cli_names_the_bad_line(tmp_path):
    write_records(tmp_path / "problems.jsonl", [Problem(id="p1", question="q", answer="2")])
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="p1", prompt="q", completion="2"),
                                               Attempt(problem_id="nope", prompt="q", completion="2")])
    result = run_cli("verify", str(tmp_path / "attempts.jsonl"), "-o", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert result.returncode == 1
    assert "attempts.jsonl, line 2, field 'problem_id'" in result.stderr and "nope" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_forked_child_gets_its_own_pool_and_leaves_the_parents_alone():
    pool = shared_pool()
    assert grade("\\boxed{\\gcd(12, 18)}", "6").correct
    pids = {worker.process.pid for worker in pool.workers}
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        close_shared_pool()  # what the child's atexit does: must not stop the parent's workers
        os._exit(0 if shared_pool() is not pool else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert grade("\\boxed{\\gcd(12, 18)}", "6").correct
    assert {worker.process.pid for worker in pool.workers} == pids


LATEX_PIECES = ["1", "23", "0.5", ".", ",", "x", "i", "e", "\\pi", "\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]",
                "^", "_", "-", "+", "/", "=", "\\{", "\\}", "\\cup", "\\pm", "\\text{cm}", "\\%", "\\infty", "\\left(",
                "\\right)", " ", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "\\sin", "!", "|", "\\binom", "or"]


def test_fast_path_never_raises_on_latex_soup():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from reasonloop.verify.compare import compare_answers

    soup = st.lists(st.sampled_from(LATEX_PIECES), max_size=20).map("".join)

    @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(soup, soup)
    def check(prediction, reference):
        decision, form = compare_answers(prediction, reference)
        assert decision in (True, False, None) and form

    check()


def test_reward_gives_nothing_for_a_bare_number_unless_the_fallback_is_asked_for():
    completions = ["3 + 5 = 8", "so \\boxed{8}"]
    assert make_reward_function()(["p"] * 2, completions, answer=["8", "8"]) == [0.0, 1.0]
    lenient = make_reward_function(last_number_fallback=True)
    assert lenient(["p"] * 2, completions, answer=["8", "8"]) == [1.0, 1.0]
    assert lenient.verifier_version == f"reasonloop-verify {VERIFIER_VERSION}+last-number"


def test_cli_counts_a_bare_number_only_with_last_number_fallback(tmp_path):
    write_records(tmp_path / "problems.jsonl", [Problem(id="p1", question="3+5?", answer="8")])
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="p1", prompt="q", completion="3 + 5 = 8")])
    strict = run_cli("verify", "attempts.jsonl", "-o", "strict.jsonl", "--json", cwd=tmp_path)
    lenient = run_cli("verify", "attempts.jsonl", "-o", "lenient.jsonl", "--json", "--last-number-fallback",
                      cwd=tmp_path)
    assert strict.returncode == 0 and lenient.returncode == 0, strict.stderr + lenient.stderr
    assert json.loads(strict.stdout)["counts"]["no_answer"] == 1
    assert json.loads(lenient.stdout)["verifier"] == f"reasonloop-verify {VERIFIER_VERSION}+last-number"
    verdict = read_records(tmp_path / "lenient.jsonl", Verdict).records[0]
    assert (verdict.status, verdict.rule, verdict.marker) == ("correct", "last-number", "last number")


def test_cli_refuses_kind_numeric_without_the_fallback(tmp_path):
    write_records(tmp_path / "problems.jsonl", [Problem(id="p1", question="q", answer="2")])
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="p1", prompt="q", completion="\\boxed{2}")])
    result = run_cli("verify", "attempts.jsonl", "-o", "out.jsonl", "--kind", "numeric", cwd=tmp_path)
    assert result.returncode == 1 and not (tmp_path / "out.jsonl").exists()
    assert result.stderr.strip().splitlines() == [
        "error: --kind numeric only widens --last-number-fallback to every reference; add --last-number-fallback "
        "or leave --kind out (answers count only in final form)"]


def test_cli_takes_the_decimal_precision_and_refuses_a_bad_one(tmp_path):
    write_records(tmp_path / "problems.jsonl", [Problem(id="p1", question="q", answer="\\frac{2}{3}")])
    write_records(tmp_path / "attempts.jsonl", [Attempt(problem_id="p1", prompt="q", completion="\\boxed{0.6666}")])
    loose = run_cli("verify", "attempts.jsonl", "-o", "loose.jsonl", "--json", "--decimal-digits", "4", cwd=tmp_path)
    assert loose.returncode == 0, loose.stderr
    assert json.loads(loose.stdout)["counts"]["correct"] == 1
    assert read_records(tmp_path / "loose.jsonl", Verdict).records[0].verifier == (
        f"reasonloop-verify {VERIFIER_VERSION}+decimal-digits=4")
    bad = run_cli("verify", "attempts.jsonl", "-o", "bad.jsonl", "--decimal-digits", "2", cwd=tmp_path)
    assert bad.returncode == 1 and not (tmp_path / "bad.jsonl").exists()
    assert bad.stderr.strip().splitlines() == ["error: decimal_digits must be an integer from 3 to 15, got 2"]
