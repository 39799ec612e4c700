"""Solvability by agreement: k sampled solutions through the one solve path; the majority answer
becomes the question's reference when its share of the k samples reaches a threshold.

The share counts all k samples, so samples without a final answer count against agreement.
The defaults (k = 8 at temperature 0.8, threshold 0.6) are cheap and ~70% precise; k = 32 at
temperature 1.4, threshold 21/32 was chosen on a development set and confirmed at 94.9% precision
(docs/synthesis.md). `agreement_report` measures the rule on problems whose answers are known.

    from reasonloop.sources.synth.agreement import AgreementSettings, solvability_filter
    result = solvability_filter(candidates, "runs/sft", AgreementSettings())
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Attempt, Problem
from reasonloop.sources.synth.filters import FilterResult, tally, with_verdict

DEFAULT_K, DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD = 8, 0.8, 0.6


@dataclass(frozen=True)
class AgreementSettings:
    """Attributes:
        k: solutions sampled per question.
        temperature: their sampling temperature.
        threshold: the majority answer's share of the k samples needed to accept it.
        max_new_tokens, batch_size, seed: as in `SolveSettings`.
    """

    k: int = DEFAULT_K
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_THRESHOLD
    max_new_tokens: int = 160
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 < self.threshold <= 1 or self.temperature <= 0:
            raise ReasonloopError(f"agreement: need k >= 1, 0 < threshold <= 1 and temperature > 0; got k={self.k}, "
                                  f"threshold={self.threshold}, temperature={self.temperature}")


@dataclass(frozen=True)
class Agreement:
    """The majority answer of one question's samples and its share of all k samples."""

    answer: str | None
    votes: int
    k: int

    @property
    def share(self) -> float:
        return self.votes / self.k if self.k else 0.0

    def passes(self, threshold: float) -> bool:
        return self.answer is not None and self.share >= threshold


def agree(answers: Sequence[str | None]) -> Agreement:
    """Majority vote over the samples' answers ('12' and '12.0' are one vote; None abstains;
    a tie goes to the answer seen first)."""
    from reasonloop.search.simple import answer_key

    keys = [answer_key(answer) for answer in answers]
    votes = Counter(key for key in keys if key is not None)
    if not votes:
        return Agreement(None, 0, len(answers))
    top = max(votes.values())
    winner = next(key for key in keys if key is not None and votes[key] == top)
    return Agreement(winner, top, len(answers))


def sample_answers(problems: Sequence[Problem], solver: str | Path, settings: AgreementSettings) -> list[list[str | None]]:
    """Per problem, the final answers of k solutions sampled through `reasonloop.solve`
    (None where a sample gives no answer or its generation failed)."""
    from reasonloop.prompts import load_prompt_format
    from reasonloop.search import SolveSettings
    from reasonloop.solve import GeneratorSpec, solve

    solve_settings = SolveSettings(strategy="sample", n=settings.k, temperature=settings.temperature,
                                   max_new_tokens=settings.max_new_tokens, seed=settings.seed,
                                   batch_size=settings.batch_size)
    spec = GeneratorSpec(str(solver), options=(("batch_size", settings.batch_size),))
    solved = solve(problems, spec, solve_settings, prompt_format=load_prompt_format(solver), label="agreement")
    return [[answer_of(a) for a in result.candidates] for result in solved.results]


def answer_of(attempt: Attempt) -> str | None:
    from reasonloop.verify.extract import extract_answer

    return None if attempt.error else extract_answer(attempt.completion)


def agreement_verdicts(problems: Sequence[Problem], answers: Sequence[Sequence[str | None]],
                       threshold: float) -> FilterResult:
    """Keep the problems whose samples agree; the agreed answer becomes the reference."""
    kept, reasons = [], []
    for problem, sampled in zip(problems, answers):
        found = agree(sampled)
        if found.answer is None:
            reasons.append("no_answers")
        elif not found.passes(threshold):
            reasons.append("no_agreement")
        else:
            kept.append(with_verdict(problem.model_copy(update={"answer": found.answer}), "solvability", "pass",
                                     agreement=round(found.share, 4), pass_rate=round(found.share, 4)))
    return tally("solvability", len(problems), kept, reasons)


def solvability_filter(problems: Sequence[Problem], solver: str | Path,
                       settings: AgreementSettings | None = None) -> FilterResult:
    """Sample k solutions per question with `solver` and keep those whose majority answer passes."""
    settings = settings or AgreementSettings()
    if not problems:
        return tally("solvability", 0, [], [])
    unanswered = [p.model_copy(update={"answer": ""}) for p in problems]  # graded as errors: only the votes count
    return agreement_verdicts(problems, sample_answers(unanswered, solver, settings), settings.threshold)


@dataclass(frozen=True)
class AgreementReport:
    """The rule on problems with known answers, at one threshold."""

    threshold: float
    problems: int
    accepted: int
    accepted_right: int
    majority_right: int  # problems whose majority answer is right, accepted or not
    rejected_right: int  # ... of which the threshold rejected

    @property
    def precision(self) -> float:
        return self.accepted_right / self.accepted if self.accepted else 0.0

    @property
    def rejected_right_rate(self) -> float:
        return self.rejected_right / self.majority_right if self.majority_right else 0.0

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "problems": self.problems, "accepted": self.accepted,
                "accepted_right": self.accepted_right, "precision": round(self.precision, 4),
                "majority_right": self.majority_right, "rejected_right": self.rejected_right,
                "rejected_right_rate": round(self.rejected_right_rate, 4)}


def agreement_report(problems: Sequence[Problem], answers: Sequence[Sequence[str | None]],
                     threshold: float) -> AgreementReport:
    """Precision of accepted answers and the share of right majority answers the threshold rejects."""
    from reasonloop.search.simple import answer_key

    accepted = accepted_right = majority_right = rejected_right = 0
    for problem, sampled in zip(problems, answers):
        found = agree(sampled)
        right = found.answer is not None and found.answer == answer_key(problem.answer)
        majority_right += right
        if found.passes(threshold):
            accepted += 1
            accepted_right += right
        else:
            rejected_right += right
    return AgreementReport(threshold, len(problems), accepted, accepted_right, majority_right, rejected_right)
