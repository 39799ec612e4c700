"""The run directory: what an evaluation (or training) run leaves on disk.

This is the contract between the writers (`reasonloop eval`, the trainers) and the
readers (`reasonloop report`). See docs/evaluation.md for every field.

    runs/NAME/
      manifest.json    how the run was made (format_version, versions, model, suite, ...)
      problems.jsonl   Problem records of the suite
      attempts.jsonl   Attempt records (problem_id, sample_index, prompt, completion, ...)
      verdicts.jsonl   Verdict records (problem_id and sample_index set)
      metrics.json     accuracy, accuracy_ci95, pass_at_k, maj_at_k, robustness, ...
      train_log.jsonl  training runs only: step, loss, learning_rate, reward, kl, accuracy
      cache/           per-item cache that makes an interrupted run resumable

Bump `RUN_FORMAT_VERSION` whenever a reader of the old layout would misread the new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

from reasonloop import __version__
from reasonloop.atomic import atomic_write_json, atomic_write_text
from reasonloop.errors import ReasonloopError
from reasonloop.records import Attempt, Problem, Record, RecordError, Trace, Verdict, read_records, write_records

RUN_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROBLEMS = "problems.jsonl"
ATTEMPTS = "attempts.jsonl"
VERDICTS = "verdicts.jsonl"
METRICS = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
CACHE_DIR = "cache"
TREES = "trees.jsonl"  # search strategies: {"problem_id": ..., "tree": {...}} per searched problem

SYNTHESIZE_KIND = "synthesize"  # a synthesize stage's directory: kept problems with provenance, no metrics
MANIFEST_KEYS = ("format_version", "reasonloop_version", "kind", "suite", "model", "model_fingerprint",
                 "verifier_version", "strategy", "sampling", "seed", "created", "packages", "config")
REQUIRED_METRICS = ("suite", "n_problems", "n_samples", "accuracy", "accuracy_ci95", "pass_at_k", "maj_at_k",
                    "mean_tokens", "by_steps", "status_counts", "robustness")
KEY_PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "math-verify", "sympy", "numpy")


class RunFormatError(ReasonloopError):
    """A run directory that cannot be read (or, when reading strictly, is not exactly this format)."""


def package_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that can change a run's numbers (none imported)."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def make_manifest(*, kind: str = "eval", suite: str | None = None, model: str | None = None,
                  model_fingerprint: str | None = None, verifier_version: str | None = None,
                  strategy: str | None = None, sampling: dict | None = None, seed: int | None = None,
                  config: dict | None = None, **extra: Any) -> dict[str, Any]:
    """A manifest with every contract key; `extra` keys are kept alongside."""
    return {
        "format_version": RUN_FORMAT_VERSION,
        "reasonloop_version": __version__,
        "kind": kind,
        "suite": suite,
        "model": model,
        "model_fingerprint": model_fingerprint,
        "verifier_version": verifier_version,
        "strategy": strategy,
        "sampling": sampling or {},
        "seed": seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "packages": package_versions(),
        "config": config or {},
        **extra,
    }


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> Path:
    return atomic_write_json(Path(run_dir) / MANIFEST, manifest)


def write_run(run_dir: str | Path, *, manifest: dict[str, Any], problems: Sequence[Problem],
              attempts: Sequence[Attempt], verdicts: Sequence[Verdict], metrics: dict[str, Any],
              trees: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write every file of a finished run, each atomically; the manifest last, marked complete.
    `trees`: problem id -> search tree, for strategies that search."""
    run_dir = Path(run_dir)
    if trees:
        lines = (json.dumps({"problem_id": pid, "tree": tree}, sort_keys=True) for pid, tree in trees.items())
        atomic_write_text(run_dir / TREES, "".join(line + "\n" for line in lines))
    write_records(run_dir / PROBLEMS, problems)
    write_records(run_dir / ATTEMPTS, attempts)
    write_records(run_dir / VERDICTS, verdicts)
    atomic_write_json(run_dir / METRICS, metrics)
    write_manifest(run_dir, {**manifest, "complete": True})
    return run_dir


def missing_metrics(metrics: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED_METRICS if name not in metrics]


@dataclass
class Run:
    """A run directory read back. `warnings` lists what could not be read, one line each."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    train_log: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def suite(self) -> str | None:
        return self.manifest.get("suite") or (self.metrics or {}).get("suite")

    def traces(self) -> list[Trace]:
        """Each problem with its attempts and verdicts in sample order (for trace viewers)."""
        attempts: dict[str, list[Attempt]] = {}
        verdicts: dict[str, list[Verdict]] = {}
        for attempt in self.attempts:
            attempts.setdefault(attempt.problem_id, []).append(attempt)
        for verdict in self.verdicts:
            verdicts.setdefault(verdict.problem_id or "", []).append(verdict)
        return [
            Trace(problem=p,
                  attempts=sorted(attempts.get(p.id, []), key=lambda a: a.sample_index),
                  verdicts=sorted(verdicts.get(p.id, []), key=lambda v: v.sample_index or 0))
            for p in self.problems
        ]


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFormatError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise RunFormatError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise RunFormatError(f"{run_dir}: not a run directory (no {MANIFEST})")
    manifest = read_json_file(path)
    if not isinstance(manifest, dict):
        raise RunFormatError(f"{path}: expected a JSON object")
    return manifest


def format_problem(run_dir: Path, manifest: dict[str, Any]) -> str | None:
    found = manifest.get("format_version")
    if found == RUN_FORMAT_VERSION:
        return None
    written_by = manifest.get("reasonloop_version", "an unknown version")
    return (f"{run_dir}: run format {found!r} (written by reasonloop {written_by}); "
            f"this reasonloop {__version__} reads format {RUN_FORMAT_VERSION}")


def read_metrics(run_dir: str | Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(metrics or None, warnings): a missing metric is named, never a crash."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return None, [f"{path}: no metrics file"]
    metrics = read_json_file(path)
    if not isinstance(metrics, dict):
        raise RunFormatError(f"{path}: expected a JSON object")
    missing = missing_metrics(metrics)
    warnings = [f"{path}: missing metric{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
    return metrics, warnings


def read_record_file(path: Path, cls: type[Record], strict: bool, warnings: list[str], expected: bool) -> list:
    if not path.is_file():
        if expected:
            warnings.append(f"{path}: missing")
        return []
    try:
        result = read_records(path, cls, skip_invalid=not strict)
    except RecordError as err:
        if strict:
            raise
        warnings.append(str(err))
        return []
    if result.skipped:
        warnings.append(f"{path}: skipped {len(result.skipped)} invalid rows (first: {result.skipped[0]})")
    return result.records


def read_train_log(path: Path, warnings: list[str]) -> list[dict[str, Any]]:
    rows = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            warnings.append(f"{path}, line {number}: malformed JSON ({exc.msg}); line skipped")
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_run(run_dir: str | Path, *, strict: bool = False, records: bool = True) -> Run:
    """Read a run directory.

    Not a run directory -> `RunFormatError`. Anything else wrong (another format version,
    a missing metric, bad rows) is a line in `Run.warnings` so a report can show what it
    can, or a `RunFormatError` when `strict`.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    warnings = [w for w in [format_problem(run_dir, manifest)] if w]
    if warnings and strict:
        raise RunFormatError(warnings[0])
    metrics, metric_warnings = read_metrics(run_dir)
    if metric_warnings and strict and (metrics is not None or manifest.get("kind", "eval") == "eval"):
        raise RunFormatError(metric_warnings[0])
    run = Run(path=run_dir, manifest=manifest, metrics=metrics, warnings=warnings + metric_warnings)
    if records:
        expected = manifest.get("kind", "eval") == "eval"  # training runs may hold no records
        run.problems = read_record_file(run_dir / PROBLEMS, Problem, strict, run.warnings, expected)
        run.attempts = read_record_file(run_dir / ATTEMPTS, Attempt, strict, run.warnings, expected)
        run.verdicts = read_record_file(run_dir / VERDICTS, Verdict, strict, run.warnings, expected)
    if (run_dir / TRAIN_LOG).is_file():
        run.train_log = read_train_log(run_dir / TRAIN_LOG, run.warnings)
    return run
