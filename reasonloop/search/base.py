"""The strategy interface: how a problem's candidates are drawn and one answer chosen.

A strategy is a small class registered by name with `@register_strategy`, in the style of
the backend registry (`reasonloop.models.base`). The one solve path (`reasonloop.solve`)
hands it the problems, a `Sampler` (the generator behind prompt rendering, seeding, the
cache and token counting) and the settings with their token budget; the strategy returns,
per problem, every candidate it drew and the tokens and model calls it spent. After the
verifier has graded the candidates, `select` names the chosen one — from what the
candidates say (their extracted answers), never from the reference answer.

    from reasonloop.search import get_strategy, strategy_names
    strategy = get_strategy("majority")      # unknown names list the registered ones
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Attempt, Problem, Verdict


class StrategyError(ReasonloopError):
    """A strategy that cannot run as asked: unknown name, k < 1, budget <= 0, missing log-probabilities."""


@dataclass(frozen=True)
class SolveSettings:
    """How problems are solved. A strategy may fix some fields (`greedy`: one sample at temperature 0).

    Attributes:
        strategy: a registered strategy name (`reasonloop strategies` lists them).
        n: candidates drawn per problem (k of pass@k, votes of majority).
        temperature, top_p: sampling; 0 = greedy.
        max_new_tokens: generation limit of one candidate.
        seed: the run seed; sample i of problem p gets a seed derived from (seed, p's id, i) only.
        budget: generated tokens a strategy may spend per problem (None: n x max_new_tokens).
        batch_size: problems per generation batch and cache shard (batch size can change
            floating-point rounding, so it is part of the cache key).
        grader: answer kind for the verifier (auto, math, numeric).
        timeout: verifier seconds per item.
    """

    strategy: str = "greedy"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    budget: int | None = None
    batch_size: int = 64
    grader: str = "auto"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise StrategyError(f"k (samples per problem) must be >= 1, got {self.n}")
        if self.budget is not None and self.budget <= 0:
            raise StrategyError(f"the token budget must be > 0, got {self.budget}")
        if self.batch_size < 1:
            raise StrategyError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class StrategyResult:
    """One problem's candidates in the order drawn, and what drawing them cost."""

    candidates: list[Attempt] = field(default_factory=list)
    tokens: int = 0  # generated tokens, including candidates dropped by the budget
    calls: int = 0  # generator calls (one per sampled sequence)
    reward_calls: int = 0  # reward-model calls, counted apart
    tree: dict[str, Any] | None = None  # a search tree for the report's trace viewer


class Sampler(Protocol):
    """What a strategy may ask of the model: `n` completions of each problem's prompt."""

    logprobs: bool  # the backend returns log-probabilities

    def sample(self, problems: Sequence[Problem], n: int, settings: SolveSettings) -> list[list[Attempt]]:
        """`n` attempts per problem (seeded by run seed, problem id and sample index; cached)."""
        ...


class Strategy(Protocol):
    name: str
    needs_logprobs: bool

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        """The settings this strategy runs with (fixed fields applied), or a StrategyError."""
        ...

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        ...

    def select(self, verdicts: Sequence[Verdict]) -> int | None:
        """Index of the chosen candidate among one problem's graded candidates (None: no answer)."""
        ...

    def score(self, verdicts: Sequence[Verdict]) -> float:
        """The problem's headline score in [0, 1]."""
        ...


STRATEGIES: dict[str, Callable[[], Strategy]] = {}
STRATEGY_MODULES = ("reasonloop.search.simple",)  # imported on first lookup; each registers its strategies


def register_strategy(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return decorate


def load_strategy_modules() -> None:
    for module in STRATEGY_MODULES:
        importlib.import_module(module)


def strategy_names() -> list[str]:
    load_strategy_modules()
    return sorted(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The registered strategy `name`; an unknown name lists the registered ones."""
    names = strategy_names()
    if name not in STRATEGIES:
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StrategyError(f"unknown strategy {name!r}{hint}; registered: {', '.join(names)}")
    return STRATEGIES[name]()


def within_budget(attempts: Sequence[Attempt], budget: int | None) -> list[Attempt]:
    """The leading attempts whose generated tokens fit in `budget` (all of them without one)."""
    if budget is None:
        return list(attempts)
    kept, spent = [], 0
    for attempt in attempts:
        spent += attempt.tokens
        if spent > budget:
            break
        kept.append(attempt)
    return kept


class SampledStrategy:
    """Base of strategies that draw independent samples in one batched call."""

    name: ClassVar[str] = ""
    needs_logprobs: ClassVar[bool] = False

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        return settings

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        drawn = sampler.sample(problems, settings.n, settings)
        return [StrategyResult(within_budget(attempts, settings.budget), sum(a.tokens for a in attempts), len(attempts))
                for attempts in drawn]

    def select(self, verdicts: Sequence[Verdict]) -> int | None:
        return 0 if verdicts else None

    def score(self, verdicts: Sequence[Verdict]) -> float:
        chosen = self.select(verdicts)
        return float(chosen is not None and verdicts[chosen].correct)
