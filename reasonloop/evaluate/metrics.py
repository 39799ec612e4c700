"""Evaluation metrics over verdicts: accuracy with a bootstrap interval, unbiased pass@k,
maj@k, robustness as GSM-Symbolic reports it (per-set accuracy distribution and the
drop under each perturbation), and the step check of calculator-annotated answers.

Everything here is pure: it takes records and returns plain dicts, so a report can be
rebuilt from the files of a run without re-running anything.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from reasonloop.errors import ReasonloopError
from reasonloop.records import VERDICT_STATUSES, Attempt, Problem, Verdict
from reasonloop.search import Strategy, get_strategy
from reasonloop.verify.steps import check_steps



def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed stably."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def coverage_fit(ks: Sequence[int], coverage: Sequence[float]) -> tuple[float, float]:
    """Large Language Monkeys' (Brown et al., 2024) exponentiated power law c(k) = exp(a * k**b),
    fitted as the straight line log(-log c) = log(-a) + b log k (least squares over the points with
    0 < c < 1). Returns (a, b); a < 0 and b < 0 when coverage rises towards 1 with k."""
    points = [(math.log(k), math.log(-math.log(c))) for k, c in zip(ks, coverage) if 0 < c < 1]
    if len(points) < 2:
        raise ValueError(f"the coverage fit needs 2 points with 0 < coverage < 1, got {len(points)}")
    slope, intercept = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return -math.exp(intercept), float(slope)


def bootstrap_ci(
    scores: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> list[float]:
    """Percentile bootstrap interval of the mean of per-problem scores."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def majority_correct(verdicts: Sequence[Verdict]) -> bool:
    """Whether the majority vote (`reasonloop.search.simple.Majority`) chose a correct sample."""
    return bool(get_strategy("majority").score(verdicts))


@dataclass
class ProblemResult:
    """One problem's verdicts in sample order, and its attempts' token counts and texts."""

    problem: Problem
    verdicts: list[Verdict] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    rewards: list[float | None] = field(default_factory=list)  # Attempt.reward: what reward-ranking strategies chose by

    @property
    def n(self) -> int:
        return len(self.verdicts)

    @property
    def n_correct(self) -> int:
        return sum(v.correct for v in self.verdicts)

    def score(self, strategy: Strategy) -> float:
        """The strategy's headline score for this problem."""
        return strategy.score(self.verdicts, self.rewards or None)


def group_results(
    problems: Sequence[Problem], attempts: Iterable[Attempt], verdicts: Iterable[Verdict]
) -> list[ProblemResult]:
    """Join verdicts (and attempt token counts) to problems by problem_id and sample_index."""
    by_id = {p.id: ProblemResult(p) for p in problems}
    indexed: dict[str, dict[int, Verdict]] = defaultdict(dict)
    for verdict in verdicts:
        if verdict.problem_id not in by_id:
            raise ReasonloopError(f"verdict for unknown problem {verdict.problem_id!r} (not in the suite's problems)")
        indexed[verdict.problem_id][verdict.sample_index or 0] = verdict
    samples: dict[str, dict[int, Attempt]] = defaultdict(dict)
    for attempt in attempts:
        samples[attempt.problem_id][attempt.sample_index] = attempt
    missing = [pid for pid in by_id if pid not in indexed]
    if missing:
        raise ReasonloopError(f"{len(missing)} of {len(by_id)} problems have no verdict (first: {missing[0]!r})")
    for pid, result in by_id.items():
        result.verdicts = [indexed[pid][i] for i in sorted(indexed[pid])]
        ordered = [samples[pid][i] for i in sorted(samples[pid])]
        result.tokens = [a.tokens for a in ordered]
        result.completions = [a.completion for a in ordered]
        result.rewards = [a.reward for a in ordered]
    return list(by_id.values())


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks = [k for k in (2**i for i in range(n.bit_length())) if k <= n]
    return sorted(set(ks + [n]))


def compute_metrics(
    problems: Sequence[Problem],
    attempts: Iterable[Attempt],
    verdicts: Iterable[Verdict],
    *,
    suite: str,
    strategy: str = "greedy",
    ks: Sequence[int] | None = None,
    seed: int = 0,
) -> dict:
    """metrics.json for one run (see docs/evaluation.md for every field)."""
    chosen = get_strategy(strategy)
    results = group_results(problems, attempts, verdicts)
    n_samples = min(r.n for r in results)
    ks = sorted(k for k in (ks or default_ks(n_samples)) if 1 <= k <= n_samples)
    scores = [r.score(chosen) for r in results]
    all_tokens = [t for r in results for t in r.tokens]
    return {
        "suite": suite,
        "strategy": strategy,
        "n_problems": len(results),
        "n_samples": n_samples,
        "accuracy": float(np.mean(scores)),
        "accuracy_ci95": bootstrap_ci(scores, seed=seed),
        "pass_at_k": {str(k): float(np.mean([pass_at_k(r.n, r.n_correct, k) for r in results])) for k in ks},
        "maj_at_k": {str(k): float(np.mean([majority_correct(r.verdicts[:k]) for r in results])) for k in ks},
        "mean_tokens": float(np.mean(all_tokens)) if all_tokens else 0.0,
        "by_steps": accuracy_by(results, scores, lambda p: p.meta.get("steps")),
        "status_counts": status_counts(results),
        "robustness": robustness(results, scores),
        "step_check": step_check(results),
    }


def step_check(results: Sequence[ProblemResult]) -> dict | None:
    """How many samples with calculator steps have grounded steps (`reasonloop.verify.steps`), and how many
    right answers were reached by flawed steps; None when no sample has a calculator step."""
    checks = [(verdict.correct, check_steps(r.problem.question, text))
              for r in results for verdict, text in zip(r.verdicts, r.completions)]
    checked = [(right, check.consistent) for right, check in checks if check.steps]
    if not checked:
        return None
    return {"n": len(checked), "consistent": sum(ok for _, ok in checked) / len(checked),
            "correct_with_flawed_steps": sum(right and not ok for right, ok in checked),
            "wrong_with_flawed_steps": sum(not right and not ok for right, ok in checked)}


def status_counts(results: Sequence[ProblemResult]) -> dict[str, int]:
    counts = Counter(v.status for r in results for v in r.verdicts)
    return {status: counts.get(status, 0) for status in VERDICT_STATUSES}


def accuracy_by(results: Sequence[ProblemResult], scores: Sequence[float], key) -> dict[str, dict]:
    """{"3": {"n": 120, "accuracy": 0.41}, ...} for problems whose key is not None."""
    groups: dict[str, list[float]] = defaultdict(list)
    for result, score in zip(results, scores):
        value = key(result.problem)
        if value is not None:
            groups[str(value)].append(score)
    order = sorted(groups, key=lambda g: (len(g), g))  # "2" before "10"
    return {g: {"n": len(groups[g]), "accuracy": float(np.mean(groups[g]))} for g in order}


def robustness(results: Sequence[ProblemResult], scores: Sequence[float]) -> dict | None:
    """GSM-Symbolic-style robustness, or None when the problems carry no template instances.

    Instance *sets*: set i holds the i-th instance of every template (the paper's 50 sets);
    its accuracy is one draw of "accuracy on this benchmark". Perturbed problems
    (meta["perturbation"]) are kept out of the sets and compared with the originals.
    """
    originals = [(r, s) for r, s in zip(results, scores) if not r.problem.meta.get("perturbation")]
    sets: dict[int, list[float]] = defaultdict(list)
    for result, score in originals:
        meta = result.problem.meta
        if meta.get("template") is not None and isinstance(meta.get("index"), int):
            sets[meta["index"]].append(score)
    perturbed = accuracy_by(results, scores, lambda p: p.meta.get("perturbation") or None)
    if len(sets) < 2 and not perturbed:
        return None
    set_accuracies = [float(np.mean(sets[i])) for i in sorted(sets)]
    original = float(np.mean([s for _, s in originals])) if originals else None
    if len(sets) >= 2:
        summary = describe_distribution(set_accuracies)
    else:
        set_accuracies, summary = [], dict.fromkeys(("mean", "std", "min", "max"))
    return {
        "sets": set_accuracies,
        **summary,
        "original_accuracy": original,
        "perturbations": {kind: perturbation_effect(results, scores, kind, original) for kind in perturbed},
    }


def perturbation_effect(results: Sequence[ProblemResult], scores: Sequence[float], kind: str,
                        original: float | None) -> dict:
    """Accuracy on the `kind`-perturbed problems and the drop from the originals.

    When every perturbed problem names its original (meta["base_id"]) and those are in
    the run, the drop is paired: the same originals against their perturbed versions.
    """
    by_id = {r.problem.id: s for r, s in zip(results, scores)}
    group = [(r, s) for r, s in zip(results, scores) if r.problem.meta.get("perturbation") == kind]
    accuracy = float(np.mean([s for _, s in group]))
    bases = [r.problem.meta.get("base_id") for r, _ in group]
    paired = all(base in by_id for base in bases)
    if paired:
        original = float(np.mean([by_id[base] for base in bases]))
    return {"n": len(group), "accuracy": accuracy, "original": original, "paired": paired,
            "drop": None if original is None else original - accuracy}


def describe_distribution(values: Sequence[float]) -> dict[str, float]:
    """mean, sample standard deviation (ddof=1, as across the paper's 50 sets), min, max."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)),
            "min": float(array.min()), "max": float(array.max())}
