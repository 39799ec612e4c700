"""The strategies that draw independent samples: `greedy`, `sample` and `majority`."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Sequence

from reasonloop.records import Verdict
from reasonloop.search.base import SampledStrategy, SolveSettings, StrategyError, register_strategy
from reasonloop.text import format_number

DEFAULT_SAMPLE_TEMPERATURE = 0.7


def answer_key(extracted: str | None) -> str | None:
    """Votes for equal answers must match: '12', '12.0' and ' 12' are one vote."""
    if extracted is None or not extracted.strip():
        return None
    return format_number(extracted.strip())


def vote_key(verdict: Verdict) -> str | None:
    """The answer a graded sample votes for; None (abstains) when it was not graded or gave no answer."""
    return answer_key(verdict.extracted) if verdict.status in ("correct", "incorrect") else None


@register_strategy("greedy")
class Greedy(SampledStrategy):
    """One sample at temperature 0."""

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        if settings.n != 1:
            raise StrategyError(f"strategy greedy draws one sample per problem; use sample or majority for n = {settings.n}")
        return replace(settings, temperature=0.0)


class Sampled(SampledStrategy):
    def prepare(self, settings: SolveSettings) -> SolveSettings:
        if settings.temperature == 0:
            return replace(settings, temperature=DEFAULT_SAMPLE_TEMPERATURE)
        return settings


@register_strategy("sample")
class Sample(Sampled):
    """n samples; the score is the share that is correct (pass@1 estimated from n samples)."""

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        return sum(v.correct for v in verdicts) / len(verdicts) if verdicts else 0.0


@register_strategy("majority")
class Majority(Sampled):
    """n samples; the most frequent answer wins (self-consistency, Wang et al. 2023).

    Samples without an answer abstain; a tie goes to the answer seen first. The vote reads
    only the answers the samples give, never the reference."""

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        votes: Counter[str] = Counter()
        first: dict[str, int] = {}
        for index, verdict in enumerate(verdicts):
            key = vote_key(verdict)
            if key is not None:
                votes[key] += 1
                first.setdefault(key, index)
        if not votes:
            return None
        top = max(votes.values())
        return min(first[key] for key, count in votes.items() if count == top)
