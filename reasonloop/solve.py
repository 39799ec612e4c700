"""The one solve path: problems + a generator + a strategy -> attempts, verdicts, traces.

Every consumer samples and grades through here: `reasonloop eval`, the pipeline's solve and
evaluate stages, self-training's sampler (RFT, DPO pairs, the GRPO difficulty filter) and the
training evaluator. So there is one prompt rendering (`PromptFormat.message`), one cache
namespace per step (`solve`, `verify`), one rule for failed generations (an `error` verdict)
and one seeding rule:

    sample i of problem p is drawn with a seed derived from (run seed, p.id, i) only

— never from its position in a batch, so a resumed run or a run over a subset draws the
same samples. (The batch a problem shares can still change floating-point rounding in the
model; the batch size is part of the cache key and batches are fixed chunks of the problem
list, so a killed and resumed run is byte-identical to an uninterrupted one.)

    from reasonloop.models import load_generator
    from reasonloop.search import SolveSettings
    from reasonloop.solve import solve
    solved = solve(problems, load_generator("runs/tiny"), SolveSettings(strategy="majority", n=8, temperature=0.8),
                   prompt_format=load_prompt_format("runs/tiny"))
    print(solved.accuracy(), solved.traces()[0])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from reasonloop.cache import BatchRunner, ItemCache, item_key, map_cached
from reasonloop.errors import ReasonloopError
from reasonloop.models.base import Completion, Generator, Prompt, SamplingParams, generate_each
from reasonloop.prompts import PromptFormat
from reasonloop.records import Attempt, Problem, SamplingRecord, Trace, Verdict
from reasonloop.search.base import SolveSettings, Strategy, StrategyError, StrategyResult, get_strategy

SOLVE_VERSION = "solve-1"  # bump when a cached generation would no longer be valid
GRADE_VERSION = "verify-1"
GRADE_BATCH = 256

Advance = Callable[[int], None]
CacheFor = Callable[[str, Sequence[str]], ItemCache]  # (namespace, keys it will read) -> cache


def problem_seed(run_seed: int, problem_id: str) -> int:
    """The seed of one problem's samples: backends derive sample i's from it and i."""
    digest = hashlib.sha256(f"{run_seed}\0{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


@dataclass(frozen=True)
class GeneratorSpec:
    """How to load a generator; picklable, so workers (processes, Ray) load it themselves once."""

    model: str
    backend: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    def load(self) -> Generator:
        key = (self.model, self.backend, self.options)
        if key not in LOADED_GENERATORS:
            from reasonloop.models import load_generator

            LOADED_GENERATORS[key] = load_generator(self.model, backend=self.backend, **dict(self.options))
        return LOADED_GENERATORS[key]

    @property
    def remote(self) -> bool:
        return self.backend == "openai" or (self.backend == "auto" and self.model.startswith(("http://", "https://")))


LOADED_GENERATORS: dict[tuple, Generator] = {}


@dataclass
class SolveCaches:
    """Where results are cached (none: computed every time) and who computes the batches."""

    cache_for: CacheFor | None = None
    runner: BatchRunner | None = None  # generation of a remote model and grading may fan out
    progress: Callable[[str, int, int], Advance] | None = None  # (label, total, done) -> advance
    on_cache: Callable[[ItemCache], None] | None = None  # after each use (the pipeline reports corrupt shards)

    def cache(self, namespace: str, keys: Sequence[str]) -> ItemCache | None:
        return self.cache_for(namespace, keys) if self.cache_for else None

    def advance(self, label: str, total: int, done: int) -> Advance:
        return self.progress(label, total, done) if self.progress else (lambda count: None)


def directory_caches(directory: str | Path, **options: Any) -> SolveCaches:
    """Caches in one folder (a run directory's `cache/`), one subfolder per namespace."""
    return SolveCaches(cache_for=lambda namespace, keys: ItemCache(Path(directory) / namespace), **options)


# ---------------------------------------------------------------- sampling


def sampling_params(settings: SolveSettings, fmt: PromptFormat, n: int, *, logprobs: bool = False) -> SamplingParams:
    return SamplingParams(n=n, temperature=settings.temperature, top_p=settings.top_p,
                          max_new_tokens=settings.max_new_tokens, seed=settings.seed, logprobs=logprobs,
                          **fmt.decoding())


def generate_chunk(items: Sequence[tuple[str, str]], *, source: Generator | GeneratorSpec, fmt: PromptFormat,
                   params: SamplingParams, fingerprint: str) -> list[list[dict]]:
    """`params.n` attempts (as dicts) for each (problem id, question): each problem seeded by its id."""
    generator = source.load() if isinstance(source, GeneratorSpec) else source
    requests = [(fmt.message(question), replace(params, seed=problem_seed(params.seed or 0, pid)))
                for pid, question in items]
    outputs = generate_each(generator, requests)
    refuse_if_all_failed(outputs)
    record = SamplingRecord.of(params)
    return [[to_attempt(pid, fmt.render_prompt(question), c, j, record, fingerprint).model_dump() for j, c in enumerate(samples)]
            for (pid, question), samples in zip(items, outputs)]


def to_attempt(problem_id: str, prompt: str, c: Completion, index: int, record: SamplingRecord,
               fingerprint: str) -> Attempt:
    return Attempt(problem_id=problem_id, prompt=prompt, completion=c.text, model=fingerprint, sampling=record,
                   sample_index=index, tokens=c.tokens, finish_reason=c.finish_reason, logprob=c.logprob,
                   error=c.error)


def refuse_if_all_failed(outputs: list[list[Completion]]) -> None:
    """Every completion of a batch failing with one message is a setup error (say, a chat
    prompt for a model without a chat template), not something to record 1,319 times."""
    errors = {c.error for completions in outputs for c in completions}
    if len(errors) == 1 and None not in errors and sum(map(len, outputs)) > 1:
        raise ReasonloopError(f"every prompt of a batch failed, nothing was cached: {errors.pop()}")


@dataclass
class CachedSampler:
    """The `Sampler` strategies draw from: renders prompts, seeds per problem, caches per problem
    in fixed batches, and records every completion as an `Attempt`."""

    source: Generator | GeneratorSpec
    prompt_format: PromptFormat
    fingerprint: str
    caches: SolveCaches = field(default_factory=SolveCaches)
    label: str = "generating"
    logprobs: bool = False

    def sample(self, problems: Sequence[Problem], n: int, settings: SolveSettings) -> list[list[Attempt]]:
        params = sampling_params(settings, self.prompt_format, n, logprobs=self.logprobs)
        items = [(p.id, p.question) for p in problems]
        keys = [item_key(SOLVE_VERSION, pid, self.prompt_format.message(q), params, self.fingerprint,
                         settings.batch_size) for pid, q in items]
        compute = partial(generate_chunk, source=self.source, fmt=self.prompt_format, params=params,
                          fingerprint=self.fingerprint)
        remote = isinstance(self.source, GeneratorSpec) and self.source.remote
        values = cached_values("solve", items, keys, compute, self.caches, batch_size=settings.batch_size,
                               label=self.label, runner=self.caches.runner if remote else None)
        return [[Attempt.model_validate(a) for a in samples] for samples in values]

    def continue_texts(self, items: Sequence[tuple[Problem, str]], n: int, settings: SolveSettings, *,
                       stop: tuple[str, ...] = (), salt: str = "") -> list[list[Attempt]]:
        """`n` continuations of each (problem, solution prefix), for step-level search and PRM labels.

        Seeded by (run seed, problem id, `salt`) and the prompt text with its prefix (a visit
        that wants fresh samples of a prefix passes a new salt); cached like `sample`. An
        attempt's `completion` is the continuation alone; one that ended at a string of `stop`
        keeps that string at its end (so a step that ends at a newline ends with it)."""
        if self.prompt_format.chat:
            raise StrategyError("step-level search continues a plain-text prompt; this model's prompt format is a chat")
        params = sampling_params(settings, self.prompt_format, n, logprobs=self.logprobs)
        params = replace(params, stop=(*params.stop, *stop))
        rows = [(p.id, self.prompt_format.render_prompt(p.question) + prefix, salt) for p, prefix in items]
        keys = [item_key(SOLVE_VERSION, "continue", pid, text, row_salt, params, self.fingerprint, settings.batch_size)
                for pid, text, row_salt in rows]
        compute = partial(prompts_chunk, source=self.source, params=params, fingerprint=self.fingerprint, kept=stop)
        remote = isinstance(self.source, GeneratorSpec) and self.source.remote
        values = cached_values("solve", rows, keys, compute, self.caches, batch_size=settings.batch_size,
                               label=self.label, runner=self.caches.runner if remote else None)
        return [[Attempt.model_validate(a) for a in samples] for samples in values]

    def generate_prompts(self, items: Sequence[tuple[Problem, Prompt, str]], n: int, settings: SolveSettings, *,
                         stop: tuple[str, ...] = ()) -> list[list[Attempt]]:
        """`n` completions of each (problem, prompt the strategy wrote, salt): the prompt is a text,
        or chat messages (a conversation with tool outputs, for `tir`).

        Seeded by (run seed, problem id, salt) — `tir` passes the sample index and turn — with
        sample j's seed derived from that and j by the backend; cached like `sample`. The format's stop strings apply, and `stop`: a completion that ended at a
        string of `stop` keeps it at its end. An attempt's `prompt` is the text, or the
        conversation as JSON."""
        params = sampling_params(settings, self.prompt_format, n, logprobs=self.logprobs)
        params = replace(params, stop=(*params.stop, *stop))
        rows = [(p.id, prompt, salt) for p, prompt, salt in items]
        keys = [item_key(SOLVE_VERSION, "prompts", pid, prompt, row_salt, params, self.fingerprint, settings.batch_size)
                for pid, prompt, row_salt in rows]
        compute = partial(prompts_chunk, source=self.source, params=params, fingerprint=self.fingerprint, kept=stop)
        remote = isinstance(self.source, GeneratorSpec) and self.source.remote
        values = cached_values("solve", rows, keys, compute, self.caches, batch_size=settings.batch_size,
                               label=self.label, runner=self.caches.runner if remote else None)
        return [[Attempt.model_validate(a) for a in samples] for samples in values]

    def generator(self) -> Generator:
        return self.source.load() if isinstance(self.source, GeneratorSpec) else self.source

    def for_generator(self, source: Generator | GeneratorSpec, fingerprint: str) -> "CachedSampler":
        """The same prompts, caches and seeds over another model (MMA's generators)."""
        return replace(self, source=source, fingerprint=fingerprint)


def prompts_chunk(rows: Sequence[tuple[str, Prompt, str]], *, source: Generator | GeneratorSpec, params: SamplingParams,
                  fingerprint: str, kept: tuple[str, ...]) -> list[list[dict]]:
    """`params.n` completions (as attempt dicts) of each (problem id, prompt, salt): a prompt text (a
    continuation of a prefix, for search) or chat messages; `kept` stop strings stay in the text."""
    generator = source.load() if isinstance(source, GeneratorSpec) else source
    requests = [(prompt, replace(params, seed=problem_seed(params.seed or 0, f"{pid}\0{salt}"))) for pid, prompt, salt in rows]
    outputs = generate_each(generator, requests)
    refuse_if_all_failed(outputs)
    record = SamplingRecord.of(params)
    return [[to_attempt(pid, prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False),
                        replace(c, text=c.text + (c.stop_reason if c.stop_reason in kept else "")), j, record,
                        fingerprint).model_dump() for j, c in enumerate(samples)]
            for (pid, prompt, _), samples in zip(rows, outputs)]


def cached_values(namespace: str, items: Sequence, keys: list[str], compute: Callable, caches: SolveCaches, *,
                  batch_size: int, label: str, runner: BatchRunner | None) -> list:
    """`compute` over `items` in fixed chunks, through the namespace's cache when there is one."""
    cache = caches.cache(namespace, keys)
    if cache is None:
        values: list = []
        advance = caches.advance(label, len(items), 0)
        for start in range(0, len(items), batch_size):
            values.extend(compute(items[start : start + batch_size]))
            advance(min(batch_size, len(items) - start))
        return values
    distinct = set(keys)
    advance = caches.advance(label, len(distinct), sum(key in cache for key in distinct))
    values = map_cached(items, keys, compute, cache, batch_size=batch_size, on_batch=advance, runner=runner)
    if caches.on_cache:
        caches.on_cache(cache)
    return values


# ---------------------------------------------------------------- grading


def grade_chunk(pairs: Sequence[tuple[str, str]], *, options: dict[str, Any], workers: int | None) -> list[dict]:
    from reasonloop.verify import grade_batch

    return [v.model_dump() for v in grade_batch(list(pairs), workers=workers, **options)]


def grade_attempts(problems: Sequence[Problem], attempts: Sequence[Attempt], *, caches: SolveCaches | None = None,
                   options: dict[str, Any] | None = None, label: str = "grading") -> list[Verdict]:
    """One verdict per attempt through the shared verifier; a failed generation is an `error` verdict."""
    from reasonloop.verify import VERIFIER_VERSION

    caches = caches or SolveCaches()
    options = dict(options or {})
    reference = {p.id: p.answer for p in problems}
    missing = sorted({a.problem_id for a in attempts} - set(reference))
    if missing:
        raise ReasonloopError(f"{len(missing)} attempts name problems that are not in the problem set, e.g. {missing[0]!r}")
    pairs = [(a.completion, reference[a.problem_id]) for a in attempts]
    keys = [item_key(GRADE_VERSION, VERIFIER_VERSION, completion, answer, options) for completion, answer in pairs]
    fan_out = getattr(caches.runner, "name", "inline") != "inline" and caches.runner is not None
    compute = partial(grade_chunk, options=options, workers=1 if fan_out else None)
    values = cached_values("verify", pairs, keys, compute, caches, batch_size=GRADE_BATCH, label=label,
                           runner=caches.runner)
    return [verdict_for(attempt, value) for attempt, value in zip(attempts, values)]


def verdict_for(attempt: Attempt, graded: dict) -> Verdict:
    verdict = Verdict.model_validate(graded)
    if attempt.error:
        verdict = Verdict(status="error", reference=verdict.reference, verifier=verdict.verifier,
                          reason=f"generation failed: {attempt.error}")
    return verdict.model_copy(update={"problem_id": attempt.problem_id, "sample_index": attempt.sample_index})


# ---------------------------------------------------------------- the path


@dataclass
class Solved:
    """What `solve` returns: per problem, the strategy's candidates, their verdicts and its choice."""

    problems: list[Problem]
    results: list[StrategyResult]
    verdicts: list[list[Verdict]]
    chosen: list[int | None]
    strategy: str
    settings: SolveSettings

    @property
    def attempts(self) -> list[Attempt]:
        return [a for r in self.results for a in r.candidates]

    @property
    def all_verdicts(self) -> list[Verdict]:
        return [v for vs in self.verdicts for v in vs]

    def correct(self) -> list[bool]:
        """Per problem: is the chosen candidate correct?"""
        return [c is not None and vs[c].correct for c, vs in zip(self.chosen, self.verdicts)]

    def accuracy(self) -> float:
        marks = self.correct()
        return sum(marks) / len(marks) if marks else 0.0

    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    def trees(self) -> dict[str, dict[str, Any]]:
        return {p.id: r.tree for p, r in zip(self.problems, self.results) if r.tree is not None}

    def traces(self) -> list[Trace]:
        return [Trace(problem=p, attempts=r.candidates, verdicts=vs, tree=r.tree)
                for p, r, vs in zip(self.problems, self.results, self.verdicts)]


def prepare(settings: SolveSettings, generator_logprobs: bool | None = None) -> tuple[Strategy, SolveSettings]:
    """The strategy and the settings it runs with; every refusal happens here, before any generation."""
    strategy = get_strategy(settings.strategy)
    settings = strategy.prepare(settings)
    if strategy.needs_logprobs and generator_logprobs is False:
        raise StrategyError(f"strategy {strategy.name} needs token log-probabilities, which this backend does not return")
    return strategy, settings


def solve(problems: Sequence[Problem], generator: Generator | GeneratorSpec, settings: SolveSettings, *,
          prompt_format: PromptFormat, fingerprint: str | None = None, caches: SolveCaches | None = None,
          grade_options: dict[str, Any] | None = None, label: str = "solve") -> Solved:
    """Solve `problems` with `settings.strategy`, grade every candidate, choose one per problem."""
    source = generator
    loaded = generator.load() if isinstance(generator, GeneratorSpec) and not generator.remote else generator
    logprobs = getattr(loaded, "supports_logprobs", None) if not isinstance(loaded, GeneratorSpec) else None
    strategy, settings = prepare(settings, logprobs)
    if fingerprint is None:
        fingerprint = (loaded.load() if isinstance(loaded, GeneratorSpec) else loaded).fingerprint()
    caches = caches or SolveCaches()
    sampler = CachedSampler(source if isinstance(source, GeneratorSpec) else loaded, prompt_format, fingerprint,
                            caches, label=label, logprobs=strategy.needs_logprobs)
    problems = list(problems)
    results = strategy.run(problems, sampler, settings)
    flat = [a for r in results for a in r.candidates]
    graded = iter(grade_attempts(problems, flat, caches=caches, options=grade_options, label=f"{label} verify"))
    verdicts = [[next(graded) for _ in r.candidates] for r in results]
    chosen = [strategy.select(vs, [a.reward for a in r.candidates]) for r, vs in zip(results, verdicts)]
    return Solved(problems, results, verdicts, chosen, strategy.name, settings)

