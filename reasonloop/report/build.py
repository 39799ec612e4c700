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
from reasonloop.stats import PairedChange, p_value_text, scores_by_item
from reasonloop.stats import paired_change as stats_paired_change
from reasonloop.records import VERDICT_STATUSES, Trace
from reasonloop.report.plots import TRAINING_PLOT, all_plots, run_color
from reasonloop.report.rundata import (TRAIN_LOG_FIELDS, RunData, is_number, load_run, metric, metric_series,
                                        text_or_none)

UNVERIFIED = "unverified"
NO_SUITE = "(no suite)"
# column order of one trace-viewer row in the embedded JSON (report.js reads the same order)
ROW_COLUMNS = ("problem", "sample", "prompt", "completion", "status", "extracted", "reference", "reason", "verifier",
               "tokens", "finish_reason", "error", "tool_calls")


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
    """Each directory's name, or as many of its last path parts as tell it apart from the others
    (trainers all write into `model/`: `sft/model`, `grpo/model`)."""
    parts = [Path(path).resolve().parts for path in run_dirs]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashing = [i for i, name in enumerate(names) if names.count(name) > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return [name if names.count(name) == 1 else str(path) for name, path in zip(names, run_dirs)]
        for i in clashing:
            depth[i] += 1


def render(runs: Sequence[RunData], title: str) -> str:
    import jinja2

    script = read_asset("report.js")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["p_text"] = p_value_text
    template = env.from_string(read_asset("template.html"))
    indexed = list(enumerate(runs))
    evaluations = [(index, run) for index, run in indexed if not run.is_training]
    plots = all_plots(runs)
    return template.render(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        runs=[run_summary(index, run) for index, run in indexed],
        evaluations=[run_summary(index, run) for index, run in evaluations],
        training=[training_summary(index, run) for index, run in indexed if run.is_training],
        training_plot=next(plot for plot in plots if plot.key == TRAINING_PLOT),
        comparison=compare_runs([run for _, run in evaluations]) if len(evaluations) > 1 else None,
        plots=[plot for plot in plots if plot.key != TRAINING_PLOT],
        css=read_asset("report.css"),
        script=script,
        script_hash=base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii"),
        data_json=json_for_script({"statuses": [*VERDICT_STATUSES, UNVERIFIED], "columns": ROW_COLUMNS,
                                   "runs": [trace_payload(index, run) for index, run in evaluations]}),
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
    return scores_by_item((trace.problem.id, verdict.status == "correct")
                          for trace in run.traces for verdict in trace.verdicts)


def paired_change(before: RunData, after: RunData) -> PairedChange:
    """`after` against `before` on the problems both graded (what the report's comparison and the
    pipeline's terminal table both show)."""
    return stats_paired_change(problem_accuracy(before), problem_accuracy(after))


@dataclass(frozen=True)
class Pair:
    """One evaluation against the one before it on the same problem set."""

    suite: str
    run: str
    label: str
    vs_run: str
    vs_label: str
    graded: tuple[int, int]  # problems graded by (vs_run, run)
    change: PairedChange

    @property
    def headline(self) -> str:
        """'self_train vs sft on heldout: +5.2 points, 45 better, 19 worse, p = 0.0016'."""
        return f"{self.label} vs {self.vs_label} on {self.suite}: {self.change.headline()}"

    @property
    def overlap_note(self) -> str | None:
        shared = self.change.shared
        if shared == min(self.graded) == max(self.graded):
            return None
        if not shared:
            return f"On {self.suite}, {self.run} and {self.vs_run} share no graded problem: not compared."
        return (f"On {self.suite}, {self.run} and {self.vs_run} share {shared} graded problem(s) "
                f"(graded: {self.graded[1]} and {self.graded[0]}): only those are compared.")


@dataclass
class Comparison:
    """Each evaluation run against the one before it on the same problem set, set by set."""

    sets: dict[str, list[Pair]] = field(default_factory=dict)
    nothing_to_compare: str | None = None

    @property
    def pairs(self) -> list[Pair]:
        return [pair for pairs in self.sets.values() for pair in pairs]

    @property
    def notes(self) -> list[str]:
        return [note for note in (pair.overlap_note for pair in self.pairs) if note]


def compare_runs(runs: Sequence[RunData]) -> Comparison:
    """Group evaluation runs by problem set (their suite) in the order given and compare each
    with the one before it in its set, as the pipeline's terminal table does."""
    by_set: dict[str, list[RunData]] = {}
    for run in runs:
        by_set.setdefault(run.suite or NO_SUITE, []).append(run)
    comparison = Comparison()
    for suite, members in by_set.items():
        labels = evaluated_labels(members)
        scores = [problem_accuracy(run) for run in members]
        pairs = [Pair(suite, members[i].name, labels[i], members[i - 1].name, labels[i - 1],
                      (len(scores[i - 1]), len(scores[i])), stats_paired_change(scores[i - 1], scores[i]))
                 for i in range(1, len(members))]
        if pairs:  # a set only one run graded has nothing to compare
            comparison.sets[suite] = pairs
    if not any(pair.change.shared for pair in comparison.pairs):
        sets = "; ".join(f"{suite}: {', '.join(run.name for run in members)}" for suite, members in by_set.items())
        comparison.nothing_to_compare = (f"Nothing to compare: no two evaluation runs share a graded problem "
                                         f"of the same problem set ({sets}).")
    return comparison


def evaluated_labels(runs: Sequence[RunData]) -> list[str]:
    """What each run evaluated: a pipeline evaluation's model stage ("sft"), else the run's name;
    run names again if that would name two runs alike."""
    labels = [model_stage(run) or run.name for run in runs]
    return labels if len(set(labels)) == len(labels) else [run.name for run in runs]


def model_stage(run: RunData) -> str | None:
    config = run.manifest.get("config")
    if not run.manifest.get("stage") or not isinstance(config, dict):
        return None
    return text_or_none(config.get("model"))


# ---------------------------------------------------------------- training runs


def training_summary(index: int, run: RunData) -> dict[str, Any]:
    """A training run's settings and where its curves ended."""
    manifest = run.manifest
    steps = manifest.get("optimizer_steps")  # an RFT run records its rounds' steps in the rounds list
    if isinstance(manifest.get("rounds"), list):
        steps = sum(r["optimizer_steps"] for r in manifest["rounds"]
                    if isinstance(r, dict) and is_number(r.get("optimizer_steps"))) or None
    last_step = run.train_log[-1]["step"] if run.train_log else None
    final = {name: run.train_log_last(name) for name in TRAIN_LOG_FIELDS}
    seconds = manifest.get("train_seconds")
    return {
        "name": run.name,
        "path": str(run.path),
        "color": run_color(index),
        "kind": text_or_none(manifest.get("kind")),
        "model": describe_value(manifest.get("model")),
        "steps": count_text(float(steps) if is_number(steps) else last_step),
        "seconds": f"{seconds:.0f}" + (" (stopped by its time limit)" if manifest.get("stopped_by_time_budget") else "")
        if is_number(seconds) else None,
        "final": ", ".join(f"{name} {value:.4g}" for name, value in final.items() if value is not None) or None,
        "settings": settings_text(manifest.get("config")),
        "manifest": [(key, describe_value(value)) for key, value in manifest.items()],
        "notices": run.notices,
    }


def settings_text(config: Any, prefix: str = "") -> str | None:
    """`learning_rate=0.005, batch_size=24, sft.epochs=2`: a config's set values, nested keys dotted."""
    if not isinstance(config, dict):
        return None
    parts = []
    for key, value in config.items():
        if isinstance(value, dict):
            nested = settings_text(value, f"{prefix}{key}.")
            parts += [nested] if nested else []
        elif value is not None and not isinstance(value, list):
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(parts) or None

# ---------------------------------------------------------------- trace viewer data


def trace_payload(index: int, run: RunData) -> dict[str, Any]:
    """One run's traces as compact arrays (see ROW_COLUMNS); repeated prompts are stored once."""
    prompts: dict[str, int] = {}
    problems, rows, trees = [], [], {}
    for number, trace in enumerate(run.traces):
        problem = trace.problem
        problems.append([problem.id, problem.question, problem.answer, problem.solution or "", problem.source,
                         provenance_text(problem.meta)])
        if trace.tree is not None:
            trees[str(number)] = trace.tree
        for attempt, verdict in pair_samples(trace) or [(None, None)]:  # a problem without samples: one row
            prompt = prompts.setdefault(attempt.prompt, len(prompts)) if attempt else -1
            rows.append([
                number,
                attempt.sample_index if attempt else verdict.sample_index if verdict else None,
                prompt,
                attempt.completion if attempt else "",
                verdict.status if verdict else UNVERIFIED,
                verdict.extracted if verdict else None,
                verdict.reference if verdict and verdict.reference is not None else problem.answer,
                verdict.reason if verdict else "no verdict for this attempt" if attempt else "no samples",
                verdict.verifier if verdict else "",
                attempt.tokens if attempt else None,
                attempt.finish_reason if attempt else None,
                attempt.error if attempt else None,
                [[c.code, c.output, c.status, c.reason, c.seconds] for c in attempt.tool_calls]
                if attempt and attempt.tool_calls is not None else None,
            ])
    return {"name": run.name, "color": run_color(index), "problems": problems, "prompts": list(prompts),
            "rows": rows, "trees": trees}


def provenance_text(meta: dict[str, Any]) -> str:
    """A synthesized problem's provenance (`meta.synth`: method, generator, filter verdicts...) on one
    line; "" for other problems."""
    synth = meta.get("synth")
    if not isinstance(synth, dict):
        return ""
    parts = [f"{key} {describe_value(value)}" for key, value in synth.items() if key != "filters"]
    filters = synth.get("filters")
    if isinstance(filters, dict) and filters:
        parts.append("filters: " + ", ".join(f"{name} {describe_value(verdict)}" for name, verdict in filters.items()))
    return " · ".join(parts)


def pair_samples(trace: Trace) -> list[tuple[Any, Any]]:
    """(attempt, verdict) pairs by sample_index; either side may be None."""
    attempts = {attempt.sample_index: attempt for attempt in trace.attempts}
    verdicts = {}
    for verdict in trace.verdicts:
        key = verdict.sample_index if verdict.sample_index is not None else len(verdicts)
        verdicts[key] = verdict
    return [(attempts.get(key), verdicts.get(key)) for key in sorted(set(attempts) | set(verdicts))]
