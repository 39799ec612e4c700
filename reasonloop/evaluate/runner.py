"""Run a suite through the one solve path and write the run directory.

    from reasonloop.models import load_generator
    from reasonloop.evaluate import evaluate_suite
    metrics = evaluate_suite(load_generator("runs/tiny"), "builtin-heldout", "runs/eval-tiny",
                             model_dir="runs/tiny", limit=50)

Generation and grading go through `reasonloop.solve` with the content-addressed cache in
`OUT/cache/`, so a killed run resumes without regenerating finished items and ends with the
same bytes as an uninterrupted one (see `reasonloop.solve` for the seeding rule).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.evaluate.metrics import compute_metrics
from reasonloop.rundir import (CACHE_DIR, MANIFEST, PROBLEMS, RunFormatError, make_manifest, read_manifest,
                               write_manifest, write_run)
from reasonloop.evaluate.suites import Suite, load_suite, suite_problems
from reasonloop.models.base import Generator
from reasonloop.prompts import PromptFormat
from reasonloop.records import Attempt, Problem, write_records
from reasonloop.search import get_strategy
from reasonloop.solve import directory_caches, grade_attempts, solve


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
    budget: int | None = None,
    prompt_format: PromptFormat | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate `generator` on `suite`, write the run directory `out_dir`, return metrics.

    `model_dir` is where the model's saved prompt format is looked up (suites with
    `prompt: model`); `problems` overrides the suite's own problem source.
    """
    from reasonloop.verify import verifier_id

    suite = (load_suite(suite) if isinstance(suite, str) else suite).with_strategy(strategy, n)
    problems = list(problems) if problems is not None else suite_problems(suite, data=data, limit=limit)
    fmt = prompt_format or suite.prompt_format(model_dir)
    settings = suite.solve_settings(batch_size=batch_size, budget=budget)
    get_strategy(settings.strategy).prepare(settings)  # refuse before anything is written
    fingerprint = generator.fingerprint()
    out_dir = Path(out_dir)
    manifest = make_manifest(
        kind="eval", suite=suite.name, model=str(model_dir or generator.name), model_fingerprint=fingerprint,
        verifier_version=verifier_id(suite.last_number_fallback), strategy=suite.strategy,
        sampling=suite.sampling_params(**fmt.decoding()).to_dict(), seed=suite.sampling.seed, complete=False,
        config={"suite": suite.model_dump(), "data": data, "limit": limit, "batch_size": batch_size,
                "budget": budget, "prompt_format": asdict(fmt)},
    )
    refuse_other_run(out_dir, manifest)
    write_manifest(out_dir, manifest)
    write_records(out_dir / PROBLEMS, problems)
    with progress_bars(progress) as bars:
        caches = directory_caches(out_dir / CACHE_DIR, progress=lambda label, total, done: bars(label, total, done))
        solved = solve(problems, generator, settings, prompt_format=fmt, fingerprint=fingerprint, caches=caches,
                       grade_options=suite.grade_options(), label="generating")
    metrics = compute_metrics(problems, solved.attempts, solved.all_verdicts, suite=suite.name,
                              strategy=suite.strategy, ks=suite.ks, seed=suite.sampling.seed)
    write_run(out_dir, manifest=manifest, problems=problems, attempts=solved.attempts, verdicts=solved.all_verdicts,
              metrics=metrics, trees=solved.trees())
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
    from reasonloop.verify import verifier_id

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
        verifier_version=verifier_id(suite.last_number_fallback), strategy=strategy, complete=False,
        config={"suite": suite.model_dump(), "data": data, "graded_existing_attempts": True,
                "suite_problems_without_attempts": len(all_problems) - len(graded_problems)},
    )
    refuse_other_run(out_dir, manifest)
    write_manifest(out_dir, manifest)
    with progress_bars(progress) as bars:
        caches = directory_caches(out_dir / CACHE_DIR, progress=lambda label, total, done: bars(label, total, done))
        verdicts = grade_attempts(graded_problems, attempts, caches=caches, options=suite.grade_options())
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


# ---------------------------------------------------------------- progress


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """`bars(description, total, done)` returns an `advance(count)` callback (no-op when disabled)."""
    if not enabled:
        yield lambda description, total, done=0: (lambda count: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        def add(description: str, total: int, done: int = 0) -> Callable[[int], None]:
            task = bar.add_task(description, total=total, completed=done)
            return lambda count: bar.advance(task, count)

        yield add
