"""Build the self-contained offline HTML report over one or more run directories.

Tables and plots are rendered in Python (Jinja2 with autoescaping, matplotlib SVG); the
trace viewer is a small inline script over the runs' records embedded as JSON. Model text
is untrusted: it is escaped by Jinja, kept inert inside the JSON block, and put on the
page only through `textContent`; a Content-Security-Policy allows no network access and
only the report's own script (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from reasonloop import __version__
from reasonloop.atomic import atomic_write_text
from reasonloop.errors import ReasonloopError
from reasonloop.stats import p_value_text, sign_test
from reasonloop.records import VERDICT_STATUSES, Trace
from reasonloop.report.plots import all_plots, run_color
from reasonloop.report.rundata import RunData, is_number, load_run, metric, metric_series, text_or_none

UNVERIFIED = "unverified"
# column order of one trace-viewer row in the embedded JSON (report.js reads the same order)
ROW_COLUMNS = ("problem", "sample", "prompt", "completion", "status", "extracted", "reference", "reason", "verifier",
               "tokens", "finish_reason", "error")


@dataclass
class Comparison:
    """Per-problem comparison of every run against the first, over the problems they share."""

    shared: int = 0
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    html: str
    runs: list[RunData]

    @property
    def notices(self) -> list[str]:
        return [f"{run.name}: {notice}" for run in self.runs for notice in run.notices]


def build_report(run_dirs: Sequence[str | Path], output: str | Path | None = None, title: str | None = None) -> Report:
    """Render the report for `run_dirs`; write it atomically to `output` if given."""
    if not run_dirs:
        raise ReasonloopError("give at least one run directory")
    runs = [load_run(path, name) for path, name in zip(run_dirs, unique_names(run_dirs))]
    html = render(runs, title or "reasonloop report: " + ", ".join(run.name for run in runs))
    if output is not None:
        atomic_write_text(output, html)
    return Report(html, runs)


def unique_names(run_dirs: Sequence[str | Path]) -> list[str]:
    names = [Path(path).resolve().name for path in run_dirs]
    return [name if names.count(name) == 1 else str(path) for name, path in zip(names, run_dirs)]


def render(runs: Sequence[RunData], title: str) -> str:
    import jinja2

    script = read_asset("report.js")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(read_asset("template.html"))
    return template.render(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        runs=[run_summary(index, run) for index, run in enumerate(runs)],
        comparison=compare_runs(runs) if len(runs) > 1 else None,
        plots=all_plots(runs),
        css=read_asset("report.css"),
        script=script,
        script_hash=base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii"),
        data_json=json_for_script({"statuses": [*VERDICT_STATUSES, UNVERIFIED], "columns": ROW_COLUMNS,
                                   "runs": [trace_payload(index, run) for index, run in enumerate(runs)]}),
    )


def read_asset(name: str) -> str:
    return resources.files("reasonloop.report").joinpath(name).read_text(encoding="utf-8")


def json_for_script(value: Any) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the model wrote."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


# ---------------------------------------------------------------- summary


def run_summary(index: int, run: RunData) -> dict[str, Any]:
    metrics, manifest = run.metrics, run.manifest
    passes, majors = metric_series(metrics, "pass_at_k"), metric_series(metrics, "maj_at_k")
    top_k = max(majors) if majors else None
    return {
        "name": run.name,
        "path": str(run.path),
        "color": run_color(index),
        "kind": text_or_none(manifest.get("kind")),
        "suite": run.suite,
        "model": describe_value(manifest.get("model")),
        "strategy": describe_value(manifest.get("strategy")),
        "verifier": text_or_none(manifest.get("verifier_version")),
        "problems": count_text(metric(metrics, "n_problems")),
        "samples": count_text(metric(metrics, "n_samples")),
        "accuracy": accuracy_text(metric(metrics, "accuracy"), ci95(metrics)),
        "pass1": percent_text(passes.get(1)),
        "maj": f"{percent_text(majors[top_k])} (k={top_k})" if top_k else None,
        "mean_tokens": None if metric(metrics, "mean_tokens") is None else f"{metric(metrics, 'mean_tokens'):.0f}",
        "steps": step_check_text(metrics.get("step_check")),
        "status_counts": status_counts(run.traces),
        "train_steps": len(run.train_log),
        "manifest": [(key, describe_value(value)) for key, value in manifest.items()],
        "notices": run.notices,
    }


def describe_value(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def ci95(metrics: dict[str, Any]) -> tuple[float, float] | None:
    interval = metrics.get("accuracy_ci95")
    if isinstance(interval, list) and len(interval) == 2 and all(map(is_number, interval)):
        return float(interval[0]), float(interval[1])
    return None


def step_check_text(check: Any) -> str | None:
    """`96.0% (3 right by flawed steps)` from metrics.step_check (None when absent or malformed)."""
    if not isinstance(check, dict) or not isinstance(check.get("consistent"), (int, float)):
        return None
    flawed = check.get("correct_with_flawed_steps")
    return percent_text(check["consistent"]) + (f" ({flawed} right by flawed steps)" if isinstance(flawed, int) else "")


def percent_text(value: float | None) -> str | None:
    return None if value is None else f"{100.0 * value:.1f}%"


def count_text(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f}"


def accuracy_text(accuracy: float | None, interval: tuple[float, float] | None) -> str | None:
    if accuracy is None:
        return None
    if interval is None:
        return percent_text(accuracy)
    return f"{100.0 * accuracy:.1f}% [{100.0 * interval[0]:.1f}, {100.0 * interval[1]:.1f}]"


def status_counts(traces: list[Trace]) -> dict[str, int]:
    counts = {status: 0 for status in VERDICT_STATUSES}
    for trace in traces:
        for verdict in trace.verdicts:
            counts[verdict.status] += 1
    return counts


# ---------------------------------------------------------------- comparison


def problem_accuracy(run: RunData) -> dict[str, float]:
    """Fraction of correct verdicts per problem, for problems with at least one verdict."""
    return {
        trace.problem.id: sum(v.status == "correct" for v in trace.verdicts) / len(trace.verdicts)
        for trace in run.traces
        if trace.verdicts
    }


def compare_runs(runs: Sequence[RunData]) -> Comparison:
    per_run = [problem_accuracy(run) for run in runs]
    shared = set.intersection(*(set(table) for table in per_run))
    comparison = Comparison(shared=len(shared), notes=overlap_notes(runs, per_run, shared))
    baseline = per_run[0]
    for run, table in zip(runs, per_run):
        accuracy = sum(table[p] for p in shared) / len(shared) if shared else None
        base = sum(baseline[p] for p in shared) / len(shared) if shared else None
        points = None if accuracy is None else 100.0 * (accuracy - base)
        better, worse = sum(table[p] > baseline[p] for p in shared), sum(table[p] < baseline[p] for p in shared)
        p_value = sign_test(better, worse)
        comparison.rows.append({
            "name": run.name,
            "suite": run.suite,
            "accuracy": percent_text(accuracy),
            "points": points,
            "delta": None if points is None else f"{points:+.1f}",
            "better": better,
            "worse": worse,
            "same": len(shared) - better - worse,
            "p": p_value,
            "p_text": p_value_text(p_value),
        })
    return comparison


def paired_change(before: RunData, after: RunData) -> dict[str, Any]:
    """The second evaluation run against the first on the problems both graded: accuracy points
    gained, problems better / worse, and the sign test's p (McNemar's with one sample each)."""
    comparison = compare_runs([before, after])
    row = comparison.rows[1]
    return {"shared": comparison.shared, "points": row["points"], "better": row["better"], "worse": row["worse"],
            "p": row["p"]}


def overlap_notes(runs: Sequence[RunData], per_run: list[dict[str, float]], shared: set[str]) -> list[str]:
    notes = []
    suites = sorted({run.suite for run in runs if run.suite})
    sizes = ", ".join(f"{run.name}: {len(table)}" for run, table in zip(runs, per_run))
    if len(suites) > 1:
        notes.append(f"The runs come from different suites ({', '.join(suites)}): "
                     f"only the {len(shared)} problem(s) they share are compared.")
    elif any(len(table) != len(shared) for table in per_run):
        notes.append(f"The runs share {len(shared)} graded problem(s) (graded per run: {sizes}): "
                     "only those are compared.")
    if not shared:
        notes.append("No graded problem is common to all runs: there is no per-problem comparison.")
    return notes


# ---------------------------------------------------------------- trace viewer data


def trace_payload(index: int, run: RunData) -> dict[str, Any]:
    """One run's traces as compact arrays (see ROW_COLUMNS); repeated prompts are stored once."""
    prompts: dict[str, int] = {}
    problems, rows, trees = [], [], {}
    for number, trace in enumerate(run.traces):
        problem = trace.problem
        problems.append([problem.id, problem.question, problem.answer, problem.solution or "", problem.source])
        if trace.tree is not None:
            trees[str(number)] = trace.tree
        for attempt, verdict in pair_samples(trace):
            prompt = prompts.setdefault(attempt.prompt, len(prompts)) if attempt else -1
            rows.append([
                number,
                attempt.sample_index if attempt else verdict.sample_index,
                prompt,
                attempt.completion if attempt else "",
                verdict.status if verdict else UNVERIFIED,
                verdict.extracted if verdict else None,
                verdict.reference if verdict and verdict.reference is not None else problem.answer,
                verdict.reason if verdict else "no verdict for this attempt",
                verdict.verifier if verdict else "",
                attempt.tokens if attempt else None,
                attempt.finish_reason if attempt else None,
                attempt.error if attempt else None,
            ])
    return {"name": run.name, "color": run_color(index), "problems": problems, "prompts": list(prompts),
            "rows": rows, "trees": trees}


def pair_samples(trace: Trace) -> list[tuple[Any, Any]]:
    """(attempt, verdict) pairs by sample_index; either side may be None."""
    attempts = {attempt.sample_index: attempt for attempt in trace.attempts}
    verdicts = {}
    for verdict in trace.verdicts:
        key = verdict.sample_index if verdict.sample_index is not None else len(verdicts)
        verdicts[key] = verdict
    return [(attempts.get(key), verdicts.get(key)) for key in sorted(set(attempts) | set(verdicts))]
