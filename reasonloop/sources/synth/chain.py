"""The filter chain over synthesized questions: format -> near-duplicates -> solvability ->
difficulty band -> decontamination. Cheap filters run first, so the solver only sees questions
that are well formed and new. Each filter's counts are kept; when nothing survives, the chain
stops with every count and advice instead of handing on an empty training set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from reasonloop.records import Problem
from reasonloop.sources.synth.agreement import AgreementSettings, solvability_filter
from reasonloop.sources.synth.filters import (FilterResult, decontaminate_filter, dedup_filter, difficulty_filter,
                                              format_filter, refuse_if_empty)

ADVICE = ("train the question writer longer (qft), sample at a lower temperature, lower the agreement threshold, "
          "widen the difficulty band, or use a stronger solver")


@dataclass(frozen=True)
class ChainSettings:
    """Attributes:
        agreement: the solvability rule (k, temperature, threshold).
        min_pass, max_pass: the difficulty band on the agreeing share.
        dedup_threshold: skeleton Jaccard (word bigrams) at or above which a question is a near-duplicate.
        ngram: word n-gram size of the decontamination check.
    """

    agreement: AgreementSettings = field(default_factory=AgreementSettings)
    min_pass: float = 0.0
    max_pass: float = 1.0
    dedup_threshold: float = 0.7
    ngram: int = 13


def filter_questions(candidates: Sequence[Problem], solver: str | Path, settings: ChainSettings | None = None, *,
                     known: Sequence[Problem] = (), suites: dict[str, Sequence[Problem]] | None = None
                     ) -> tuple[list[Problem], list[FilterResult]]:
    """The kept problems (answers set by agreement, provenance in meta) and each filter's counts.
    `known`: problems whose skeletons are not new (e.g. the training set); `suites`: evaluation sets."""
    settings = settings or ChainSettings()
    steps = [
        lambda items: format_filter(items),
        lambda items: dedup_filter(items, threshold=settings.dedup_threshold, against=known),
        lambda items: solvability_filter(items, solver, settings.agreement),
        lambda items: difficulty_filter(items, min_pass=settings.min_pass, max_pass=settings.max_pass),
        lambda items: decontaminate_filter(items, suites or {}, n=settings.ngram),
    ]
    results: list[FilterResult] = []
    items = list(candidates)
    for step in steps:
        results.append(step(items))
        refuse_if_empty(results, ADVICE)
        items = results[-1].kept
    return items, results
