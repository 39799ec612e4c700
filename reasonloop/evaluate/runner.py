"""Run a suite: generate (cached per batch), grade (cached per completion), write the run dir.

    from reasonloop.models import load_generator
    from reasonloop.evaluate import evaluate_suite
    metrics = evaluate_suite(load_generator("runs/tiny"), "builtin-heldout", "runs/eval-tiny",
                             model_dir="runs/tiny", limit=50)

Both stages go through the project's content-addressed cache in `OUT/cache/`, so a killed
run resumes without regenerating finished items. Generation is cached per *fixed batch*
of problems (batch i always holds the same problems and gets seed `seed + i`): a sampled
completion depends on what else shares its batch, so this is what makes a resumed run
produce the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from reasonloop.cache import ItemCache, item_key, map_cached
from reasonloop.errors import ReasonloopError
from reasonloop.evaluate.metrics import compute_metrics
from reasonloop.evaluate.rundir import (CACHE_DIR, MANIFEST, PROBLEMS, RunFormatError, make_manifest, read_manifest,
                                       write_manifest, write_run)
from reasonloop.evaluate.suites import Suite, load_suite, suite_problems
from reasonloop.models.base import Completion, Generator, Prompt, SamplingParams
from reasonloop.prompts import PromptFormat
from reasonloop.records import Attempt, Problem, SamplingRecord, Verdict, write_records

GENERATE_VERSION = "eval-generate-1"  # bump when a cached generation would no longer be valid
GRADE_BATCH = 256


def evaluate_suite(
    generator: Generator,
    suite: Suite | str,
    out_dir: str | Path,
    *,
    model_dir: str | Path | None = None,
    problems: Sequence[Problem] | None = None,
    data: str | None = None,
    limit: int | None = None,
    strategy: str | None = None,
    n: int | None = None,
    prompt_format: PromptFormat | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate `generator` on `suite`, write the run directory `out_dir`, return metrics.

    `model_dir` is where the model's saved prompt format is looked up (suites with
    `prompt: model`); `problems` overrides the suite's own problem source.
    """
    from reasonloop.verify import VERIFIER_VERSION

    suite = (load_suite(suite) if isinstance(suite, str) else suite).with_strategy(strategy, n)
    problems = list(problems) if problems is not None else suite_problems(suite, data=data, limit=limit)
    fmt = prompt_format or suite.prompt_format(model_dir)
    params = suite.sampling_params(**fmt.decoding())
    fingerprint = generator.fingerprint()
    out_dir = Path(out_dir)
    manifest = make_manifest(
        kind="eval", suite=suite.name, model=str(model_dir or generator.name), model_fingerprint=fingerprint,
        verifier_version=VERIFIER_VERSION, strategy=suite.strategy, sampling=params.to_dict(),
        seed=suite.sampling.seed, complete=False,
        config={"suite": suite.model_dump(), "data": data, "limit": limit, "batch_size": batch_size,
                "prompt_format": asdict(fmt)},
    )
    refuse_other_run(out_dir, manifest)
    write_manifest(out_dir, manifest)
    write_records(out_dir / PROBLEMS, problems)
    cache = ItemCache(out_dir / CACHE_DIR)
    with progress_bars(progress) as bars:
        attempts = generate_attempts(generator, problems, fmt, params, fingerprint, cache,
                                     batch_size=batch_size, advance=bars("generating", len(problems)))
        verdicts = grade_attempts(problems, attempts, cache, advance=bars("grading", len(attempts)))
    metrics = compute_metrics(problems, attempts, verdicts, suite=suite.name, strategy=suite.strategy,
                              ks=suite.ks, seed=suite.sampling.seed)
    write_run(out_dir, manifest=manifest, problems=problems, attempts=attempts, verdicts=verdicts, metrics=metrics)
    return metrics


def evaluate_attempts(
    attempts: Sequence[Attempt],
    suite: Suite | str,
    out_dir: str | Path,
    *,
    problems: Sequence[Problem] | None = None,
    data: str | None = None,
    strategy: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Grade completions made elsewhere (another tool, an API) as a run of `suite`.

    Problems of the suite without attempts are left out (the manifest counts them).
    """
    from reasonloop.verify import VERIFIER_VERSION

    suite = load_suite(suite) if isinstance(suite, str) else suite
    all_problems = list(problems) if problems is not None else suite_problems(suite, data=data)
    known = {p.id for p in all_problems}
    stray = [a.problem_id for a in attempts if a.problem_id not in known]
    if stray:
        raise ReasonloopError(f"{len(stray)} attempts name problems that are not in suite {suite.name!r} "
                              f"(first: {stray[0]!r})")
    answered = {a.problem_id for a in attempts}
    graded_problems = [p for p in all_problems if p.id in answered]
    per_problem = max((a.sample_index for a in attempts), default=0) + 1
    strategy = strategy or ("greedy" if per_problem == 1 else "sample")
    out_dir = Path(out_dir)
    manifest = make_manifest(
        kind="eval", suite=suite.name, model=sorted({a.model for a in attempts})[0] if attempts else None,
        verifier_version=VERIFIER_VERSION, strategy=strategy, complete=False,
        config={"suite": suite.model_dump(), "data": data, "graded_existing_attempts": True,
                "suite_problems_without_attempts": len(all_problems) - len(graded_problems)},
    )
    refuse_other_run(out_dir, manifest)
    write_manifest(out_dir, manifest)
    with progress_bars(progress) as bars:
        verdicts = grade_attempts(graded_problems, attempts, ItemCache(out_dir / CACHE_DIR),
                                  advance=bars("grading", len(attempts)))
    metrics = compute_metrics(graded_problems, attempts, verdicts, suite=suite.name, strategy=strategy,
                              ks=suite.ks, seed=suite.sampling.seed)
    write_run(out_dir, manifest=manifest, problems=graded_problems, attempts=list(attempts), verdicts=verdicts,
              metrics=metrics)
    return metrics


RESUME_KEYS = ("format_version", "kind", "suite", "model_fingerprint", "strategy", "sampling")


def refuse_other_run(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Resume only the same run: never overwrite another run's results in `out_dir`."""
    if not (out_dir / MANIFEST).is_file():
        return
    try:
        existing = read_manifest(out_dir)
    except RunFormatError as exc:
        raise ReasonloopError(f"{exc}; choose another output directory") from None
    as_json = json.loads(json.dumps(manifest))  # tuples read back as lists
    differs = [key for key in RESUME_KEYS if existing.get(key) != as_json.get(key)]
    if differs:
        key = differs[0]
        raise ReasonloopError(f"{out_dir} holds another run ({key} {existing.get(key)!r}, this run {manifest.get(key)!r}); "
                              f"choose another output directory, or delete it to start over")


# ---------------------------------------------------------------- generation


def render(fmt: PromptFormat, question: str) -> tuple[str, Prompt]:
    """(prompt text to record, prompt to send)."""
    text = fmt.render_prompt(question)
    return text, ([{"role": "user", "content": text}] if fmt.chat else text)


def generate_attempts(
    generator: Generator,
    problems: Sequence[Problem],
    fmt: PromptFormat,
    params: SamplingParams,
    fingerprint: str,
    cache: ItemCache,
    *,
    batch_size: int = 16,
    advance: Callable[[int], None] = lambda count: None,
) -> list[Attempt]:
    """params.n attempts per problem, in problem order; finished batches come from the cache."""
    batches = [list(problems[i : i + batch_size]) for i in range(0, len(problems), batch_size)]
    batch_params = [SamplingParams(**{**params.to_dict(), "seed": (params.seed or 0) + i}) for i in range(len(batches))]
    keys = [item_key(GENERATE_VERSION, [render(fmt, p.question)[1] for p in batch], batch_params[i], fingerprint)
            for i, batch in enumerate(batches)]
    advance(sum(len(b) for b, key in zip(batches, keys) if key in cache))

    def compute(indexes: Sequence[int]) -> list[Any]:
        results = []
        for i in indexes:
            outputs = generator.generate([render(fmt, p.question)[1] for p in batches[i]], batch_params[i])
            if not results:
                refuse_if_all_failed(outputs)
            results.append([[asdict(c) for c in completions] for completions in outputs])
            advance(len(batches[i]))
        return results

    values = map_cached(list(range(len(batches))), keys, compute, cache, batch_size=1)
    attempts = []
    for batch, value, sampling in zip(batches, values, batch_params):
        for problem, completions in zip(batch, value):
            attempts.extend(to_attempts(problem, fmt, completions, sampling, fingerprint))
    return attempts


def refuse_if_all_failed(outputs: list[list[Completion]]) -> None:
    """Every completion of a batch failing with one message is a setup error (say, a chat
    prompt for a model without a chat template), not something to record 1,319 times."""
    errors = {c.error for completions in outputs for c in completions}
    if len(errors) == 1 and None not in errors and sum(map(len, outputs)) > 1:
        raise ReasonloopError(f"every prompt of a batch failed, nothing was cached: {errors.pop()}")


def to_attempts(problem: Problem, fmt: PromptFormat, completions: list[dict], params: SamplingParams,
                fingerprint: str) -> list[Attempt]:
    sampling = SamplingRecord.of(params)
    prompt = render(fmt, problem.question)[0]
    return [
        Attempt(problem_id=problem.id, prompt=prompt, completion=c.text, model=fingerprint, sampling=sampling,
                sample_index=j, tokens=c.tokens, finish_reason=c.finish_reason, logprob=c.logprob, error=c.error)
        for j, c in enumerate(Completion(**d) for d in completions)
    ]


# ---------------------------------------------------------------- grading


def grade_attempts(
    problems: Sequence[Problem],
    attempts: Sequence[Attempt],
    cache: ItemCache,
    *,
    advance: Callable[[int], None] = lambda count: None,
) -> list[Verdict]:
    """One verdict per attempt through the shared verifier; failed generations are `error`."""
    from reasonloop.verify import VERIFIER_VERSION, grade_batch

    reference = {p.id: p.answer for p in problems}
    pairs = [(a.completion, reference[a.problem_id]) for a in attempts]
    keys = [item_key("eval-grade", VERIFIER_VERSION, completion, answer) for completion, answer in pairs]
    advance(sum(key in cache for key in keys))

    def compute(chunk: Sequence[tuple[str, str]]) -> list[dict]:
        verdicts = grade_batch(list(chunk))
        advance(len(chunk))
        return [v.model_dump() for v in verdicts]

    values = map_cached(pairs, keys, compute, cache, batch_size=GRADE_BATCH)
    verdicts = []
    for attempt, value in zip(attempts, values):
        verdict = Verdict.model_validate(value)
        if attempt.error:
            verdict = Verdict(status="error", reference=verdict.reference, verifier=verdict.verifier,
                              reason=f"generation failed: {attempt.error}")
        verdict.problem_id, verdict.sample_index = attempt.problem_id, attempt.sample_index
        verdicts.append(verdict)
    return verdicts


# ---------------------------------------------------------------- progress


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """`bars(description, total)` returns an `advance(count)` callback (no-op when disabled)."""
    if not enabled:
        yield lambda description, total: (lambda count: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        def add(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda count: bar.advance(task, count)

        yield add
