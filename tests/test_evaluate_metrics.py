import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonloop.errors import ReasonloopError
from reasonloop.evaluate.metrics import (
    bootstrap_ci,
    compute_metrics,
    default_ks,
    majority_correct,
    pass_at_k,
)
from reasonloop.records import Attempt, Problem, Verdict
from reasonloop.stats import sign_test


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (c correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_brute_force_over_all_subsets(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def brute_force_sign_test(wins: int, losses: int) -> float:
    """Share of all equally likely win/loss sequences of the same length whose split is at
    least as lopsided as the observed one."""
    n = wins + losses
    observed = abs(wins - losses)
    splits = [sum(signs) for signs in itertools.product((0, 1), repeat=n)]
    return sum(abs(2 * w - n) >= observed for w in splits) / len(splits)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 7), st.integers(0, 7))
def test_sign_test_matches_enumerating_every_outcome(wins, losses):
    assert sign_test(wins, losses) == pytest.approx(brute_force_sign_test(wins, losses), abs=1e-12)
    assert sign_test(wins, losses) == sign_test(losses, wins)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.floats(0.05, 0.95), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_pass_at_k_matches_monte_carlo_estimate_on_synthetic_data(n, p, k, seed):
    # synthetic model: each problem's samples are correct with probability p; the average of
    # the unbiased estimator over many problems must match drawing k fresh samples directly
    k = min(k, n)
    rng = np.random.default_rng(seed)
    problems = 3000
    estimate = np.mean([pass_at_k(n, int(c), k) for c in rng.binomial(n, p, size=problems)])
    direct = (rng.random((problems, k)) < p).any(axis=1).mean()
    assert estimate == pytest.approx(1 - (1 - p) ** k, abs=0.04)
    assert direct == pytest.approx(1 - (1 - p) ** k, abs=0.04)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def verdict(status, extracted=None, index=0, pid="p"):
    return Verdict(status=status, extracted=extracted, problem_id=pid, sample_index=index)


def test_majority_vote_counts_equal_answers_together_and_ignores_abstentions():
    wrong_twice = [verdict("correct", "5"), verdict("incorrect", "7"), verdict("incorrect", "7.0")]
    assert not majority_correct(wrong_twice)
    abstaining = [verdict("correct", "5"), verdict("no_answer"), verdict("timeout", "7"), verdict("error")]
    assert majority_correct(abstaining)
    assert not majority_correct([verdict("no_answer")])
    # tie: the answer seen first wins, whatever the order of the dict
    assert majority_correct([verdict("correct", "5"), verdict("incorrect", "7")])
    assert not majority_correct([verdict("incorrect", "7"), verdict("correct", "5")])


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_data():
    rng = random.Random(1)
    small = [float(rng.random() < 0.6) for _ in range(50)]
    large = [float(rng.random() < 0.6) for _ in range(2000)]
    for scores in (small, large):
        low, high = bootstrap_ci(scores)
        assert low <= sum(scores) / len(scores) <= high
    assert (bootstrap_ci(large)[1] - bootstrap_ci(large)[0]) < (bootstrap_ci(small)[1] - bootstrap_ci(small)[0])
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    # the normal approximation of a proportion's 95% interval: half-width 1.96 * sqrt(p(1-p)/n)
    p = sum(large) / len(large)
    half = 1.96 * math.sqrt(p * (1 - p) / len(large))
    low, high = bootstrap_ci(large)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_default_ks_are_powers_of_two_and_n():
    assert default_ks(1) == [1]
    assert default_ks(6) == [1, 2, 4, 6]
    assert default_ks(8) == [1, 2, 4, 8]


def make_run(outcomes, meta=None):
    """outcomes: per problem, a list of (status, extracted) per sample."""
    problems, attempts, verdicts = [], [], []
    for i, samples in enumerate(outcomes):
        problem = Problem(id=f"p{i}", question=f"q{i}", answer="5", meta=(meta or {}).get(i, {}))
        problems.append(problem)
        for j, (status, extracted) in enumerate(samples):
            attempts.append(Attempt(problem_id=problem.id, prompt="", completion="", sample_index=j, tokens=10 * (j + 1)))
            verdicts.append(verdict(status, extracted, j, problem.id))
    return problems, attempts, verdicts


def test_metrics_of_a_small_run_by_hand():
    outcomes = [
        [("correct", "5"), ("incorrect", "4"), ("correct", "5"), ("no_answer", None)],
        [("incorrect", "4"), ("incorrect", "4"), ("correct", "5"), ("incorrect", "3")],
        [("incorrect", "1"), ("incorrect", "2"), ("timeout", None), ("incorrect", "3")],
    ]
    problems, attempts, verdicts = make_run(outcomes, {0: {"steps": 2}, 1: {"steps": 2}, 2: {"steps": 10}})
    sample = compute_metrics(problems, attempts, verdicts, suite="s", strategy="sample")
    assert sample["n_problems"] == 3 and sample["n_samples"] == 4
    assert sample["accuracy"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert sample["pass_at_k"]["1"] == pytest.approx(sample["accuracy"])
    assert sample["pass_at_k"]["4"] == pytest.approx(2 / 3)
    assert list(sample["pass_at_k"]) == ["1", "2", "4"]
    assert sample["maj_at_k"]["4"] == pytest.approx(1 / 3)  # only problem 0 votes 5 most often
    assert sample["maj_at_k"]["1"] == pytest.approx(1 / 3)  # first samples: correct, wrong, wrong
    assert sample["mean_tokens"] == pytest.approx(25.0)
    assert sample["status_counts"] == {"correct": 3, "incorrect": 7, "no_answer": 1, "timeout": 1, "error": 0}
    assert list(sample["by_steps"]) == ["2", "10"]
    assert sample["by_steps"]["2"] == {"n": 2, "accuracy": pytest.approx(3 / 8)}
    assert sample["robustness"] is None
    greedy = compute_metrics(problems, attempts, verdicts, suite="s", strategy="greedy")
    assert greedy["accuracy"] == pytest.approx(1 / 3)
    majority = compute_metrics(problems, attempts, verdicts, suite="s", strategy="majority")
    assert majority["accuracy"] == pytest.approx(sample["maj_at_k"]["4"])
    low, high = sample["accuracy_ci95"]
    assert 0 <= low <= sample["accuracy"] <= high <= 1


def test_step_check_counts_right_answers_reached_by_flawed_steps():
    problem = Problem(id="bus", question="A bus has 18 riders; 6 get off. How many are left?", answer="12")
    texts = [(" 18 - 6 = <<18-6=12>>12 riders.\n#### 12", "correct"),
             (" 19 - 7 = <<19-7=12>>12 riders.\n#### 12", "correct"),
             (" 19 - 6 = <<19-6=13>>13 riders.\n#### 13", "incorrect"),
             (" 18 - 6 = <<18-6=12>>12 riders.\n#### 13", "incorrect"),
             ("Twelve.\n#### 12", "correct")]  # no calculator step: not checked
    attempts = [Attempt(problem_id="bus", prompt="", completion=t, sample_index=i) for i, (t, _) in enumerate(texts)]
    verdicts = [verdict(status, None, i, "bus") for i, (_, status) in enumerate(texts)]
    metrics = compute_metrics([problem], attempts, verdicts, suite="s", strategy="sample")
    assert metrics["step_check"] == {"n": 4, "consistent": 0.25, "correct_with_flawed_steps": 1,
                                     "wrong_with_flawed_steps": 2}
    plain = [a.model_copy(update={"completion": "12"}) for a in attempts]
    assert compute_metrics([problem], plain, verdicts, suite="s", strategy="sample")["step_check"] is None


def test_robustness_sets_and_perturbation_drop():
    # 3 templates x 2 instance sets, plus renamed copies of set 0
    outcomes, meta = [], {}
    plan = [("t1", 0, None, "correct"), ("t2", 0, None, "correct"), ("t3", 0, None, "incorrect"),
            ("t1", 1, None, "correct"), ("t2", 1, None, "incorrect"), ("t3", 1, None, "incorrect"),
            ("t1", 0, "rename", "incorrect"), ("t2", 0, "rename", "correct"), ("t3", 0, "rename", "incorrect")]
    for i, (template, index, perturbation, status) in enumerate(plan):
        outcomes.append([(status, "5" if status == "correct" else "1")])
        meta[i] = {"template": template, "index": index, "perturbation": perturbation}
    metrics = compute_metrics(*make_run(outcomes, meta), suite="s")
    rob = metrics["robustness"]
    assert rob["sets"] == pytest.approx([2 / 3, 1 / 3])
    assert rob["mean"] == pytest.approx(0.5)
    assert rob["std"] == pytest.approx(math.sqrt(2 * (1 / 6) ** 2))  # sample std of the two sets
    assert (rob["min"], rob["max"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert rob["original_accuracy"] == pytest.approx(0.5)
    assert rob["perturbations"]["rename"] == {"n": 3, "accuracy": pytest.approx(1 / 3), "original": 0.5,
                                              "paired": False, "drop": pytest.approx(0.5 - 1 / 3)}
    # renamed problems that name their originals: the drop compares those originals only (set 0: 2/3)
    for i in (6, 7, 8):
        meta[i]["base_id"] = f"p{i - 6}"
    paired = compute_metrics(*make_run(outcomes, meta), suite="s")["robustness"]["perturbations"]["rename"]
    assert paired["paired"] is True
    assert paired["original"] == pytest.approx(2 / 3) and paired["drop"] == pytest.approx(2 / 3 - 1 / 3)


def test_missing_verdicts_and_unknown_strategy_are_clear_errors():
    problems, attempts, verdicts = make_run([[("correct", "5")], [("correct", "5")]])
    with pytest.raises(ReasonloopError, match="1 of 2 problems have no verdict"):
        compute_metrics(problems, attempts, verdicts[:1], suite="s")
    with pytest.raises(ReasonloopError, match="unknown strategy .*registered: .*greedy, majority, .*sample"):
        compute_metrics(problems, attempts, verdicts, suite="s", strategy="best")
    stray = verdict("correct", "5", 0, "nope")
    with pytest.raises(ReasonloopError, match="unknown problem 'nope'"):
        compute_metrics(problems, attempts, verdicts + [stray], suite="s")


def test_coverage_fit_recovers_an_exponentiated_power_law_and_refuses_too_few_points():
    from reasonloop.evaluate.metrics import coverage_fit

    ks = [1, 2, 4, 8, 16, 32, 64]
    a, b = coverage_fit(ks, [math.exp(-0.9 * k ** -0.35) for k in ks])
    assert a == pytest.approx(-0.9) and b == pytest.approx(-0.35)
    with pytest.raises(ValueError, match="needs 2 points with 0 < coverage < 1, got 1"):
        coverage_fit([1, 2, 4], [0.5, 1.0, 1.0])
