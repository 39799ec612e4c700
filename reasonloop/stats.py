"""Paired statistics shared by the metrics, the training evaluator, the report and the run table.

Every comparison of two models here is paired (the same problems, one score each), so the
test is the two-sided exact sign test over the problems that changed; with right/wrong
outcomes it is McNemar's exact test.

    from reasonloop.stats import paired_change
    change = paired_change({"p1": 1.0, "p2": 0.0}, {"p1": 1.0, "p2": 1.0})
    print(change.points, change.better, change.worse, p_value_text(change.p))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test that wins and losses are equally likely (ties left out): on
    paired right/wrong outcomes it is McNemar's exact test."""
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n if n else 1.0
    return min(1.0, 2 * tail)


def p_value_text(p: float) -> str:
    """One format for p-values everywhere: 'p = 0.38', 'p < 0.001'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


@dataclass(frozen=True)
class PairedChange:
    """`after` against `before` on the items both scored: accuracy points gained, items
    better / worse / same, and the sign test's p."""

    shared: int
    before: float | None
    after: float | None
    better: int
    worse: int
    p: float

    @property
    def same(self) -> int:
        return self.shared - self.better - self.worse

    @property
    def points(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return 100.0 * (self.after - self.before)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"points": self.points, "same": self.same}

    def headline(self) -> str:
        """'+5.2 points, 45 better, 19 worse, p = 0.0016'."""
        if self.points is None:
            return "no shared problems"
        return f"{self.points:+.1f} points, {self.better} better, {self.worse} worse, {p_value_text(self.p)}"


def scores_by_item(outcomes: Iterable[tuple[str, bool]]) -> dict[str, float]:
    """(item id, right?) pairs -> the fraction right per item (one sample: 0.0 or 1.0)."""
    tally: dict[str, list[int]] = {}
    for item, right in outcomes:
        counts = tally.setdefault(item, [0, 0])
        counts[0] += bool(right)
        counts[1] += 1
    return {item: right / total for item, (right, total) in tally.items()}


def paired_change(before: Mapping[str, float], after: Mapping[str, float]) -> PairedChange:
    """Per-item scores (item id -> score in [0, 1]) of two runs, compared on their shared items."""
    shared = sorted(set(before) & set(after))
    if not shared:
        return PairedChange(0, None, None, 0, 0, 1.0)
    better = sum(after[i] > before[i] for i in shared)
    worse = sum(after[i] < before[i] for i in shared)
    mean = lambda table: sum(table[i] for i in shared) / len(shared)  # noqa: E731
    return PairedChange(len(shared), mean(before), mean(after), better, worse, sign_test(better, worse))


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on paired outcomes: b = only A right, c = only B right."""

    only_a: int
    only_b: int
    p_value: float

    def __str__(self) -> str:
        return f"McNemar: only first correct {self.only_a}, only second correct {self.only_b}, {p_value_text(self.p_value)}"


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Two-sided exact (binomial) McNemar test that A and B are equally accurate on the same items."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes must have the same length, got {len(a)} and {len(b)}")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return McNemar(only_a, only_b, sign_test(only_a, only_b))
