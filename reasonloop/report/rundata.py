"""A run directory as the report sees it: read with `reasonloop.rundir.read_run`
(which turns anything wrong but a non-run directory into warnings), grouped into traces.

The report also reads an optional `trees.jsonl` beside the records, one
`{"problem_id": str, "tree": {...}}` per line, for search trees (a node's `children`
list holds its child nodes; its other keys are shown as its label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonloop.rundir import SYNTHESIZE_KIND, Run, read_run
from reasonloop.records import Trace, iter_jsonl_rows

TREES = "trees.jsonl"
TRAIN_LOG_FIELDS = ("loss", "learning_rate", "reward", "kl", "accuracy", "solved_fraction")
TRAINING_KIND = "train"  # trainers write kind "train-sft", "train-rft", "train-dpo", "train-grpo"


@dataclass
class RunData:
    """Everything the report shows about one run, plus notices about what was wrong."""

    name: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    traces: list[Trace] = field(default_factory=list)
    train_log: list[dict[str, float]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def suite(self) -> str | None:
        return text_or_none(self.manifest.get("suite")) or text_or_none(self.metrics.get("suite"))

    @property
    def is_training(self) -> bool:
        return is_training_kind(self.manifest.get("kind"))

    def train_log_last(self, name: str) -> float | None:
        """The last logged value of a training-log field, or None if never logged."""
        return next((row[name] for row in reversed(self.train_log) if name in row), None)


def is_training_kind(kind: Any) -> bool:
    return isinstance(kind, str) and (kind == TRAINING_KIND or kind.startswith(TRAINING_KIND + "-"))


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Load a run directory; raises `RunFormatError` (a user error) only if it is not one."""
    run = read_run(path)
    notices = list(run.warnings)
    kind = run.manifest.get("kind")
    if (is_training_kind(kind) or kind == SYNTHESIZE_KIND) and run.metrics is None:  # these write no metrics.json
        notices = [notice for notice in notices if not notice.endswith(": no metrics file")]
    data = RunData(name=name or run.name, path=run.path, manifest=run.manifest, metrics=run.metrics or {},
                   traces=run.traces(), train_log=numeric_train_log(run.train_log), notices=notices)
    note_unmatched_records(run, data.notices)
    attach_trees(data)
    return data


def note_unmatched_records(run: Run, notices: list[str]) -> None:
    """Attempts and verdicts whose problem is not in problems.jsonl are not shown: say how many."""
    known = {problem.id for problem in run.problems}
    attempts = sum(attempt.problem_id not in known for attempt in run.attempts)
    verdicts = sum(verdict.problem_id not in known for verdict in run.verdicts)
    if attempts or verdicts:
        notices.append(f"{attempts} attempt(s) and {verdicts} verdict(s) name no problem in problems.jsonl: not shown")
    graded = {(verdict.problem_id, verdict.sample_index) for verdict in run.verdicts}
    ungraded = sum((attempt.problem_id, attempt.sample_index) not in graded for attempt in run.attempts)
    if ungraded:
        notices.append(f"{ungraded} attempt(s) have no verdict: shown as unverified")


def attach_trees(run: RunData) -> None:
    path = run.path / TREES
    if not path.is_file():
        return
    by_id = {trace.problem.id: trace for trace in run.traces}
    for line, row in iter_jsonl_rows(path):
        valid = isinstance(row, dict) and isinstance(row.get("tree"), dict) and row.get("problem_id") in by_id
        if valid:
            by_id[row["problem_id"]].tree = row["tree"]
        else:
            run.notices.append(f"{path}, line {line}: not a {{\"problem_id\", \"tree\"}} row for a known problem; skipped")


def numeric_train_log(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """train_log rows reduced to their numeric fields, in step order; rows without a step are dropped."""
    numeric = [{key: float(value) for key, value in row.items() if is_number(value)} for row in rows]
    return sorted((row for row in numeric if "step" in row), key=lambda row: row["step"])


def text_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int, float)) and str(value) else None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def metric(metrics: dict[str, Any], *keys: str) -> float | None:
    """A numeric metric at a nested key path, or None if absent or not a number."""
    value: Any = metrics
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if is_number(value) else None


def metric_series(metrics: dict[str, Any], key: str) -> dict[int, float]:
    """A `{"k": value}` metric (pass_at_k, maj_at_k) as {int k: float}, skipping bad entries."""
    table = metrics.get(key)
    if not isinstance(table, dict):
        return {}
    series = {int(k): float(v) for k, v in table.items() if str(k).isdigit() and is_number(v)}
    return dict(sorted(series.items()))
