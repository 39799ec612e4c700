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
    strategy = get_strategy("best_of_n:reward_model=runs/prm,aggregate=min")   # with options

A strategy name may carry options, `NAME:KEY=VALUE,KEY=VALUE` (a list value joins its items
with `+`), so `reasonloop eval --strategy` and recipes' `strategy:` take them unchanged; a
strategy with options declares them as a dataclass `Options` and is built as `cls(options)`.

Strategies that rank candidates by a reward model record each candidate's score on the
candidate itself (`Attempt.reward`, saved with the attempts), and `select`/`score` receive
those rewards beside the verdicts: choosing never needs the reference, and a run's metrics
can be recomputed from its files.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any, Callable, ClassVar, Protocol, Sequence

from pydantic import AfterValidator

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
    prompt_format: Any  # the model's `reasonloop.prompts.PromptFormat` (is it a chat model?)

    def sample(self, problems: Sequence[Problem], n: int, settings: SolveSettings) -> list[list[Attempt]]:
        """`n` attempts per problem (seeded by run seed, problem id and sample index; cached)."""
        ...

    def continue_texts(self, items: Sequence[tuple[Problem, str]], n: int, settings: SolveSettings, *,
                       stop: tuple[str, ...] = (), salt: str = "") -> list[list[Attempt]]:
        """`n` continuations of each (problem, solution prefix) (step-level search); see `reasonloop.solve.CachedSampler`."""
        ...

    def generate_prompts(self, items: Sequence[tuple[Problem, Any, str]], n: int, settings: SolveSettings, *,
                         stop: tuple[str, ...] = ()) -> list[list[Attempt]]:
        """`n` completions of each (problem, prompt the strategy wrote: text or chat messages, seed salt) (`pal`, `tir`)."""
        ...

    def generator(self) -> Any:
        """The model behind the sampler (reward models check its tokenizer; MMA scores with it)."""
        ...


class Strategy(Protocol):
    name: str
    needs_logprobs: bool

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        """The settings this strategy runs with (fixed fields applied), or a StrategyError."""
        ...

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        ...

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        """Index of the chosen candidate among one problem's graded candidates (None: no answer);
        `rewards`: each candidate's `Attempt.reward` (None where no reward model scored it)."""
        ...

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        """The problem's headline score in [0, 1]."""
        ...


STRATEGIES: dict[str, Callable[[], Strategy]] = {}
STRATEGY_MODULES = ("reasonloop.search.simple", "reasonloop.search.reranking", "reasonloop.search.beam",
                     "reasonloop.search.mcts", "reasonloop.search.refine", "reasonloop.search.mma",
                     "reasonloop.search.tools")  # imported on first lookup; each registers its strategies


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


def parse_strategy(spec: str) -> tuple[str, dict[str, str]]:
    """'best_of_n:reward_model=runs/prm,aggregate=min' -> ('best_of_n', {'reward_model': ..., 'aggregate': 'min'})."""
    name, _, rest = str(spec).partition(":")
    options: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise StrategyError(f"strategy {spec!r}: option {pair!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return name.strip(), options


MODEL_OPTIONS = ("reward_model", "models")  # strategy options whose values name models ('+'-joined)


def strategy_model_paths(spec: str) -> list[str]:
    """The models a strategy's options name (`reward_model=runs/prm`, `models=a+b`), in order: what
    a cache key must fingerprint besides the strategy text, since a path can be retrained in place."""
    _, options = parse_strategy(spec)
    return [path for key in MODEL_OPTIONS for path in options.get(key, "").split("+") if path]


def make_options(name: str, options_type: type, raw: dict[str, str]) -> Any:
    """The strategy's `Options` dataclass from text values, converted to each field's default's type."""
    known = {f.name: f for f in fields(options_type)}
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StrategyError(f"strategy {name} has no option {key!r}{hint}; its options: {', '.join(known)}")
        default = known[key].default if known[key].default is not MISSING else None
        values[key] = convert_option(name, key, text, default)
    try:
        return options_type(**values)
    except (TypeError, ValueError, StrategyError) as exc:
        raise StrategyError(f"strategy {name}: {exc}") from None


def convert_option(name: str, key: str, text: str, default: Any) -> Any:
    if isinstance(default, tuple):
        return tuple(part for part in text.split("+") if part)
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise StrategyError(f"strategy {name}: option {key} must be a{'n' if kind is int else ''} "
                                    f"{kind.__name__}, got {text!r}") from None
    return text or None


def get_strategy(name: str) -> Strategy:
    """The registered strategy `name` (with its options, `NAME:KEY=VALUE,...`); an unknown name lists the registered ones."""
    names = strategy_names()
    base, raw = parse_strategy(name)
    if base not in STRATEGIES:
        close = difflib.get_close_matches(base, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StrategyError(f"unknown strategy {base!r}{hint}; registered: {', '.join(names)}")
    cls = STRATEGIES[base]
    options_type = getattr(cls, "Options", None)
    if options_type is None:
        if raw:
            raise StrategyError(f"strategy {base} takes no options, got {', '.join(raw)}")
        return cls()
    return cls(make_options(base, options_type, raw))  # type: ignore[call-arg]


def registered_name(name: str) -> str:
    """`name` if a strategy is registered under it; a ValueError (which pydantic reports with the field) if not."""
    try:
        get_strategy(name)
    except StrategyError as exc:
        raise ValueError(str(exc)) from None
    return name


StrategyName = Annotated[str, AfterValidator(registered_name)]  # a config field that names a strategy


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

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        return 0 if verdicts else None

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)
