"""The report's plots, drawn with matplotlib as inline SVG (no JS plotting library, no network).

Each builder takes the runs and returns a `Plot`: an SVG string, or a note saying which
data was missing. Accuracy-like values are fractions in [0, 1] and are drawn as percent.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from reasonloop.report.rundata import TRAIN_LOG_FIELDS, RunData, is_number, metric, metric_series

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "reasonloop",  # deterministic ids, so the same runs give the same file
    "text.parse_math": False,  # run names are labels, not mathtext ("$" must not break a plot)
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
TOKEN_BINS = 6
TRAINING_PLOT = "training"


@dataclass
class Plot:
    key: str
    title: str
    svg: str | None = None
    note: str = ""
    wide: bool = False  # spans the page's full width


def run_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def all_plots(runs: Sequence[RunData]) -> list[Plot]:
    return [builder(runs) for builder in PLOT_BUILDERS]


def draw(key: str, title: str, paint: Callable[[Any], None], size: tuple[float, float] = (7.0, 3.2)) -> Plot:
    """Run `paint(figure)` on a fresh figure and return it as an inline SVG plot."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=size, layout="constrained")
        paint(figure)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return Plot(key, title, svg=inline_svg(buffer.getvalue(), prefix=key))


def inline_svg(svg: str, prefix: str) -> str:
    """Strip the XML prolog and prefix every id, so several SVGs can share one page."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    svg = svg.replace("url(#", f"url(#{prefix}-")
    return re.sub(r'href="#', f'href="#{prefix}-', svg)


def percent(values):
    return [100.0 * value for value in values]


# ---------------------------------------------------------------- individual plots


def training_curves(runs: Sequence[RunData]) -> Plot:
    title = "Training curves"
    fields = [name for name in TRAIN_LOG_FIELDS
              if any(sum(name in row for row in run.train_log) > 1 for run in runs)]  # a curve needs two points
    if not fields:
        return Plot(TRAINING_PLOT, title, note="No run has a train_log.jsonl with two or more rows of "
                                               + ", ".join(TRAIN_LOG_FIELDS) + ".")

    def paint(figure):
        axes = figure.subplots(1, len(fields), squeeze=False)[0]
        for ax, name in zip(axes, fields):
            for index, run in enumerate(runs):
                points = [(row["step"], row[name]) for row in run.train_log if name in row]
                if points:
                    ax.plot(*zip(*points), color=run_color(index), label=run.name, linewidth=1.2,
                            marker="o" if len(points) == 1 else None)
            ax.set_title(name)
            ax.set_xlabel("step")
        axes[0].legend(fontsize=8)

    plot = draw(TRAINING_PLOT, title, paint, size=(max(4.0, 2.8 * len(fields)), 2.6))
    plot.wide = True
    return plot


def accuracy_vs_k(runs: Sequence[RunData]) -> Plot:
    title = "Accuracy vs k (pass@k solid, maj@k dashed, coverage fit dotted)"
    series = [(index, run, metric_series(run.metrics, "pass_at_k"), metric_series(run.metrics, "maj_at_k"))
              for index, run in enumerate(runs)]
    if not any(passes or majors for _, _, passes, majors in series):
        return Plot("accuracy-k", title, note="No run has pass_at_k or maj_at_k in metrics.json.")
    if not any(len(passes) > 1 or len(majors) > 1 for _, _, passes, majors in series):
        ks = sorted({k for _, _, passes, majors in series for k in [*passes, *majors]})
        return Plot("accuracy-k", title, note=f"Every run has pass@k and maj@k at one k only "
                                              f"(k = {', '.join(map(str, ks))}): nothing to draw against k.")

    def paint(figure):
        ax = figure.subplots()
        ks = sorted({k for _, _, passes, majors in series for k in [*passes, *majors]})
        for index, run, passes, majors in series:
            if passes:
                ax.plot(list(passes), percent(passes.values()), "o-", color=run_color(index), label=f"{run.name} pass@k")
                if fit := coverage_curve(passes):
                    ax.plot(*fit, ":", color=run_color(index), label=f"{run.name} fit exp(a·k^b)")
            if majors:
                ax.plot(list(majors), percent(majors.values()), "s--", color=run_color(index), label=f"{run.name} maj@k")
        if ks[-1] > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("k (samples per problem)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)

    return draw("accuracy-k", title, paint)


def coverage_curve(passes: dict[int, float]) -> tuple[list[float], list[float]] | None:
    """Large Language Monkeys' coverage fit exp(a * k**b) through a run's pass@k, drawn over its ks
    (percent); None with fewer than 3 points strictly between 0 and 1 (a fit needs more than a line)."""
    import numpy as np

    from reasonloop.evaluate.metrics import coverage_fit

    inside = {k: c for k, c in passes.items() if 0 < c < 1}
    if len(inside) < 3:
        return None
    a, b = coverage_fit(list(inside), list(inside.values()))
    ks = np.geomspace(min(passes), max(passes), 50)
    return list(ks), percent(np.exp(a * ks ** b))


def robustness_of(metrics: dict[str, Any]) -> dict[str, Any]:
    value = metrics.get("robustness")
    return value if isinstance(value, dict) else {}


def robustness_sets(metrics: dict[str, Any]) -> list[float]:
    """Per-set accuracies from metrics.robustness.sets (numbers or {"accuracy": x} objects)."""
    sets = robustness_of(metrics).get("sets")
    if not isinstance(sets, list):
        return []
    values = [item.get("accuracy") if isinstance(item, dict) else item for item in sets]
    return [float(value) for value in values if is_number(value)]


def robustness_distribution(runs: Sequence[RunData]) -> Plot:
    title = "Robustness: accuracy over instance sets (dashes: accuracy on the originals)"
    data = [(index, run, robustness_sets(run.metrics)) for index, run in enumerate(runs)]
    data = [item for item in data if item[2]]
    if not data:
        return Plot("robustness", title, note="No run has robustness.sets in metrics.json.")
    if all(len(values) < 2 for _, _, values in data):
        return Plot("robustness", title, note="Every run has one instance set only: no spread to draw.")

    def paint(figure):
        import numpy as np

        ax = figure.subplots()
        jitter = np.random.default_rng(0)
        for position, (index, run, values) in enumerate(data, start=1):
            values, summary = percent(values), robustness_of(run.metrics)
            ax.boxplot([values], positions=[position], widths=0.5, showfliers=False,
                       medianprops={"color": run_color(index)})
            ax.scatter(position + jitter.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.6,
                       color=run_color(index))
            std = metric(summary, "std")
            spread = f" ± {100 * std:.1f}" if std is not None else ""
            ax.annotate(f"mean {np.mean(values):.1f}{spread}", (position, max(values)), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=8)
            original = metric(summary, "original_accuracy")
            if original is not None:
                ax.hlines(100 * original, position - 0.35, position + 0.35, colors=run_color(index), linestyles="--")
        ax.set_xticks(range(1, len(data) + 1), [f"{run.name}\n({len(values)} sets)" for _, run, values in data])
        ax.set_ylabel("accuracy per set (%)")

    return draw("robustness", title, paint)


def perturbation_drops(runs: Sequence[RunData]) -> Plot:
    title = "Robustness: accuracy drop under each perturbation"
    drops = [(index, run, perturbation_table(run.metrics)) for index, run in enumerate(runs)]
    drops = [item for item in drops if item[2]]
    if not drops:
        return Plot("perturbations", title, note="No run has robustness.perturbations in metrics.json.")

    def paint(figure):
        ax = figure.subplots()
        names = sorted({name for _, _, table in drops for name in table})
        width = 0.8 / len(drops)
        for slot, (index, run, table) in enumerate(drops):
            xs = [position + slot * width for position, name in enumerate(names) if name in table]
            ax.bar(xs, [100.0 * table[name] for name in names if name in table], width=width,
                   color=run_color(index), label=run.name)
        ax.set_xticks([position + 0.4 - width / 2 for position in range(len(names))], names)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("drop vs original (points)")
        ax.legend(fontsize=8)

    return draw("perturbations", title, paint)


def perturbation_table(metrics: dict[str, Any]) -> dict[str, float]:
    table = robustness_of(metrics).get("perturbations")
    if not isinstance(table, dict):
        return {}
    return {str(name): value for name, value in ((n, metric(table, n, "drop")) for n in table) if value is not None}


def token_bins(run: RunData) -> list[tuple[float, float, int]]:
    """(mean tokens, accuracy, count) per token-length bin over the run's graded attempts."""
    import numpy as np

    pairs = []
    for trace in run.traces:
        tokens = {attempt.sample_index: attempt.tokens for attempt in trace.attempts}
        for verdict in trace.verdicts:
            count = tokens.get(verdict.sample_index, 0)
            if count > 0:
                pairs.append((count, verdict.status == "correct"))
    if not pairs:
        return []
    tokens, correct = np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs], dtype=float)
    edges = np.unique(np.quantile(tokens, np.linspace(0, 1, TOKEN_BINS + 1)))
    which = np.clip(np.searchsorted(edges, tokens, side="right") - 1, 0, max(len(edges) - 2, 0))
    return [(float(tokens[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
            for b in np.unique(which)]


def accuracy_vs_tokens(runs: Sequence[RunData]) -> Plot:
    title = "Accuracy vs tokens (binned attempts; ★ = run mean tokens, accuracy)"
    data = [(index, run, token_bins(run), metric(run.metrics, "mean_tokens"), metric(run.metrics, "accuracy"))
            for index, run in enumerate(runs)]
    points = sum(len(bins) + (mean is not None and acc is not None) for _, _, bins, mean, acc in data)
    if not points:
        return Plot("accuracy-tokens", title, note="No run has token counts in attempts.jsonl or mean_tokens in metrics.json.")
    if points < 2:
        return Plot("accuracy-tokens", title, note="One point only (a single run, all its attempts of one length).")

    def paint(figure):
        ax = figure.subplots()
        for index, run, bins, mean_tokens, accuracy in data:
            if bins:
                ax.plot([b[0] for b in bins], percent(b[1] for b in bins), "o-", color=run_color(index),
                        label=run.name, linewidth=1.2)
            if mean_tokens is not None and accuracy is not None:
                ax.plot([mean_tokens], [100.0 * accuracy], "*", markersize=12, color=run_color(index),
                        label=None if bins else run.name)
        ax.set_xlabel("completion tokens")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)

    return draw("accuracy-tokens", title, paint)


def steps_series(metrics: dict[str, Any]) -> dict[int, float]:
    """metrics.by_steps as {steps: accuracy}; values are numbers or {"accuracy": x} objects."""
    table = metrics.get("by_steps")
    if not isinstance(table, dict):
        return {}
    series = {}
    for steps, value in table.items():
        accuracy = value.get("accuracy") if isinstance(value, dict) else value
        if str(steps).isdigit() and is_number(accuracy):
            series[int(steps)] = float(accuracy)
    return dict(sorted(series.items()))


def accuracy_by_steps(runs: Sequence[RunData]) -> Plot:
    title = "Accuracy by number of reasoning steps"
    data = [(index, run, steps_series(run.metrics)) for index, run in enumerate(runs)]
    if not any(series for _, _, series in data):
        return Plot("accuracy-steps", title, note="No run has by_steps in metrics.json.")
    if all(len(series) < 2 for _, _, series in data):
        return Plot("accuracy-steps", title, note="Every run's problems have one number of steps: nothing to draw against steps.")

    def paint(figure):
        ax = figure.subplots()
        for index, run, series in data:
            if series:
                ax.plot(list(series), percent(series.values()), "o-", color=run_color(index), label=run.name)
        ax.set_xlabel("reasoning steps in the reference solution")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)

    return draw("accuracy-steps", title, paint)


PLOT_BUILDERS = (training_curves, accuracy_vs_k, robustness_distribution, perturbation_drops, accuracy_vs_tokens,
                 accuracy_by_steps)
