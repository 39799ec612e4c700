"""Answer forms the fast path missed on real model output (issue #20), and the decimal precision policy.

Each pair is decided by the fast path (no math-verify), so `compare_answers` is the unit."""

from __future__ import annotations

import importlib

import pytest

from reasonloop.verify import VERIFIER_VERSION, grade, grade_batch
from reasonloop.verify.compare import DECIMAL_DIGITS_RANGE, compare_answers
from reasonloop.verify.pool import GraderPool

grade_module = importlib.import_module("reasonloop.verify.grade")  # the package's `grade` is the function


def decide(prediction: str, reference: str, **settings) -> bool | None:
    return compare_answers(prediction, reference, **settings)[0]


@pytest.mark.parametrize("prediction, reference, expected", [
    ("0.\\overline{3}", "\\frac{1}{3}", True),
    ("0.1\\overline{6}", "\\frac16", True),
    ("0.\\overline{142857}", "1/7", True),
    ("1.\\overline{27}", "\\frac{14}{11}", True),
    ("0.\\overline{3}", "0.3", False),
    ("0.\\overline{6}", "\\frac{1}{3}", False),
    ("2.\\overline{9}", "3", True),
])
def test_repeating_decimals_written_with_overline(prediction, reference, expected):
    assert decide(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("2 1/2", "\\frac{5}{2}", True),
    ("2 1/2", "2\\frac{1}{2}", True),
    ("-1 3/4", "-\\frac{7}{4}", True),
    ("2 1/2", "\\frac{3}{2}", False),
    ("10 3/8 inches", "\\frac{83}{8}", True),
])
def test_mixed_numbers_in_plain_text(prediction, reference, expected):
    assert decide(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("\\mathbb{R}", "(-\\infty,\\infty)", True),
    ("(-\\infty, \\infty)", "\\mathbb{R}", True),
    ("\\text{all real numbers}", "(-\\infty,\\infty)", True),
    ("\\mathbb{R}", "[0,\\infty)", False),
    ("(-\\infty, 0) \\cup (0, \\infty)", "\\mathbb{R}", False),
])
def test_all_reals_as_a_symbol_or_an_interval(prediction, reference, expected):
    assert decide(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("\\text{12 cm}", "12", True),
    ("\\text{there are 12 apples}", "12", True),
    ("\\text{there are 13 apples}", "12", False),
    ("\\text{1011}_2", "1011_2", True),
    ("\\text{1011}_{2}", "1011_2", True),
    ("\\text{1101}_2", "1011_2", False),
    ("\\text{Evelyn}", "Evelyn", True),
])
def test_text_with_words_around_the_answer_or_around_base_n_digits(prediction, reference, expected):
    assert decide(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, expected", [
    ("0.666666", "\\frac{2}{3}", True),        # truncated, 6 significant digits
    ("0.666667", "\\frac{2}{3}", True),        # rounded
    ("3.141592", "\\pi", True),                # truncated pi
    ("1.414213", "\\sqrt{2}", True),
    ("0.666665", "\\frac{2}{3}", False),       # neither the rounding nor the truncation
    ("0.6666", "\\frac{2}{3}", False),         # too few digits by default: 0.6666 is its own value
    ("3.1415", "\\pi", False),
    ("0.1666", "\\frac{1}{6}", False),
])
def test_decimals_that_truncate_an_exact_value_default_precision(prediction, reference, expected):
    assert decide(prediction, reference) is expected


@pytest.mark.parametrize("prediction, reference, digits, expected", [
    ("0.6666", "\\frac{2}{3}", 4, True),
    ("3.1415", "\\pi", 4, True),
    ("0.6667", "\\frac{2}{3}", 4, True),
    ("0.6665", "\\frac{2}{3}", 4, False),
    ("0.666666", "\\frac{2}{3}", 8, False),    # a stricter setting wants more digits
    ("0.66666666", "\\frac{2}{3}", 8, True),
])
def test_decimal_precision_setting_both_ways(prediction, reference, digits, expected):
    assert decide(prediction, reference, decimal_digits=digits) is expected


@pytest.mark.parametrize("digits", [DECIMAL_DIGITS_RANGE[0] - 1, DECIMAL_DIGITS_RANGE[1] + 1, 2.5, "6", True])
def test_precision_outside_its_documented_range_is_refused(digits):
    with pytest.raises(ValueError, match="decimal_digits must be an integer from"):
        compare_answers("0.5", "1/2", decimal_digits=digits)


def test_grade_batch_takes_the_decimal_precision_and_its_verifier_id_says_so():
    pairs = [("so \\boxed{0.6666}", "\\frac{2}{3}"), ("so \\boxed{0.666666}", "\\frac{2}{3}")]
    default, loose, strict = (grade_batch(pairs, **settings) for settings in ({}, {"decimal_digits": 4},
                                                                              {"decimal_digits": 8}))
    assert [verdict.status for verdict in default] == ["incorrect", "correct"]
    assert [verdict.status for verdict in loose] == ["correct", "correct"]
    assert [verdict.status for verdict in strict] == ["incorrect", "incorrect"]
    assert {verdict.verifier for verdict in default} == {f"reasonloop-verify {VERIFIER_VERSION}"}
    assert {verdict.verifier for verdict in loose} == {f"reasonloop-verify {VERIFIER_VERSION}+decimal-digits=4"}
    assert grade(*pairs[0], decimal_digits=4, last_number_fallback=True).verifier == (
        f"reasonloop-verify {VERIFIER_VERSION}+last-number+decimal-digits=4")
    assert grade(*pairs[0], decimal_digits=6).verifier == f"reasonloop-verify {VERIFIER_VERSION}"


@pytest.mark.parametrize("digits", [2, 16, 6.0, None])
def test_grade_batch_refuses_a_bad_precision_before_grading_anything(digits, monkeypatch):
    graded = []
    monkeypatch.setattr(grade_module, "grade_fast", lambda *args: graded.append(args))
    with pytest.raises(ValueError, match="decimal_digits must be an integer from 3 to 15"):
        grade_batch([("\\boxed{1}", "1")] * 3, decimal_digits=digits)
    assert graded == []


def test_forms_end_to_end_through_grade():
    assert grade("so $\\boxed{0.\\overline{3}}$", "\\frac13").status == "correct"
    assert grade("The answer is 2 1/2", "5/2").status == "correct"
    assert grade("\\boxed{\\mathbb{R}}", "(-\\infty,\\infty)").status == "correct"


@pytest.mark.parametrize("prediction, reference, expected", [
    ("27 \\text{ inches}^3", "27 \\text{ inches}^2", False),   # both state a power: the powers must agree
    ("27 \\text{ inches}^2", "27 \\text{ inches}^3", False),
    ("27 cm^2", "27 cm^3", False),
    ("27 cm^{3}", "27\\mbox{ cm}^2", False),
    ("27 square inches", "27 cubic inches", False),
    ("27 cubic inches", "27 \\text{ inches}^2", False),
    ("27", "27 \\text{ cm}^2", True),                         # one side has no unit: units do not count
    ("27 \\text{ cm}^2", "27", True),
    ("27 \\text{ cm}", "27 \\text{ cm}^2", True),              # one side states no power
    ("27 \\text{cm}^2", "27 \\text{ cm}^2", True),
    ("27 \\text{ cm}^{2}", "27 cm^2", True),
    ("27 square inches", "27 \\text{ inches}^2", True),
    ("28 \\text{ cm}^2", "27 \\text{ cm}^2", False),           # same power, other value
])
def test_units_with_different_powers_differ(prediction, reference, expected):
    assert decide(prediction, reference) is expected


def test_unit_powers_decide_in_the_fast_path_and_say_so():
    verdict = grade("so $\\boxed{27 \\text{ inches}^3}$", "27 \\text{ inches}^2")
    assert verdict.status == "incorrect"
    assert verdict.reason == "27 \\text{ inches}^3 differs from 27 \\text{ inches}^2 (the units' powers differ)"
    assert compare_answers("27 cm^2", "27 cm^3") == (False, "unit powers")


PATHOLOGICAL = {  # the answer a model might write -> the status it must get against "12", by the fast path
    "\\boxed{10^{10^{10^{10}}}}": "incorrect",              # a power tower past any double: not 12
    "\\boxed{" + "7" * 1_000_000 + "}": "error",            # a million digits: over the answer-length limit
    "\\boxed{" + "{" * 10_000 + "}": "no_answer",           # 10,000 open braces never close
    "The result is \\boxed{12": "no_answer",                # an unclosed box is no final answer
    "\\boxed{\x00\x01\x1b[2J5\x07}": "incorrect",             # control bytes and a terminal escape around 5
    "": "no_answer",
    # a sampled answer (T 1.2) whose unit-stripping regex once backtracked for hours: 14 s at 4 repeats, x3 each
    "#### 90 millimeters76 millimeters480 millimeters" + "imeters" * 30 + "48090": "incorrect",
}


def test_pathological_answers_get_a_status_without_reaching_the_timeout():
    verdicts = grade_batch([(completion, "12") for completion in PATHOLOGICAL])
    assert [verdict.status for verdict in verdicts] == list(PATHOLOGICAL.values())
    assert not any("math-verify" in verdict.reason for verdict in verdicts)  # none waited on the worker pool


def test_pool_workers_import_their_graders_when_the_pool_starts():
    pool = GraderPool(size=1)
    try:
        pool.start()
        assert len(pool.workers) == 1 and not pool.workers[0].ready  # spawned, start() did not wait
        worker = pool.workers[0]
        assert worker.outbox.poll(60) and worker.outbox.recv() == "ready"  # imported with no batch running
        worker.ready = True
        assert pool.run([("\\frac{2}{4}", "0.5")], timeout=5.0)[0][0] == "correct"
    finally:
        pool.close()
