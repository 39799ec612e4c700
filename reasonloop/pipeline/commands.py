"""`reasonloop run RECIPE`, `reasonloop quickstart` and `reasonloop cache ls|gc`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

cache_app = typer.Typer(help="Inspect and clean the content-addressed result cache.", no_args_is_help=True)
QUICKSTART = Path(__file__).parent / "recipes" / "quickstart.yaml"


def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: List[str] = typer.Option([], "--set", help="Override a key: seed=3, loop.rounds=1, stages.solve.temperature=0.5."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", "-o", help="Run directory (default: runs/NAME)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Result cache (default: $REASONLOOP_CACHE or ~/.cache/reasonloop)."),
    executor: Optional[str] = typer.Option(None, help="local (process pool), ray, or inline; default: the recipe's."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)."),
    workers: Optional[int] = typer.Option(None, help="Worker processes / Ray CPUs."),
    limit: Optional[int] = typer.Option(None, help="Keep at most N problems in every problems stage (a quick try)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the libraries' own warnings and logs."),
) -> None:
    """Run a recipe; a killed run resumes where it stopped when run again."""
    run_recipe_file(recipe, set_, run_dir, cache_dir, executor, address, workers, as_json, verbose, limit)


def quickstart(
    set_: List[str] = typer.Option([], "--set", help="Override a recipe key (see `reasonloop run`)."),
    run_dir: Path = typer.Option(Path("runs/quickstart"), "--run-dir", "-o", help="Run directory."),
    cache_dir: Optional[Path] = typer.Option(None, help="Result cache (default: $REASONLOOP_CACHE or ~/.cache/reasonloop)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the libraries' own warnings and logs."),
) -> None:
    """Built-in templates -> tiny model -> SFT -> self-training -> GRPO -> evaluation -> HTML report."""
    run_recipe_file(QUICKSTART, set_, run_dir, cache_dir, None, None, None, as_json, verbose)


def quiet_libraries() -> None:
    """Keep the terminal to progress bars and results: no library warnings or their own bars."""
    import logging
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("transformers", "trl", "datasets", "accelerate", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def run_recipe_file(recipe_path, overrides, run_dir, cache_dir, executor, address, workers, as_json,
                    verbose: bool = False, limit: int | None = None) -> None:
    from rich.console import Console

    from reasonloop.pipeline.recipe import load_recipe
    from reasonloop.pipeline.engine import run_recipe

    overrides = list(overrides)
    if executor:
        overrides.append(f"executor.kind={executor}")
    if address:
        overrides.append(f"executor.address={address}")
    if workers:
        overrides.append(f"executor.workers={workers}")
    recipe = load_recipe(recipe_path, overrides)
    if limit is not None:
        if limit < 1:
            raise typer.BadParameter(f"--limit must be >= 1, got {limit}")
        for stage in recipe.stages:
            if stage.kind == "problems":
                stage.limit = min(stage.limit or limit, limit)
    if not verbose:
        quiet_libraries()
    console = Console(stderr=as_json)
    run_dir = run_dir or Path("runs") / recipe.name
    start = time.perf_counter()
    with ProgressBars(console) as bars:
        result = run_recipe(recipe, run_dir, cache_dir=cache_dir, progress=bars.bar, log=bars.log)
    elapsed = time.perf_counter() - start
    summary = result_summary(result, elapsed)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    print_summary(console, summary)


class ProgressBars:
    """rich progress bars for per-item stages, and log lines above them."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self.started = time.perf_counter()

    def __enter__(self) -> "ProgressBars":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def bar(self, label: str, total: int, done: int = 0):
        task = self.progress.add_task(label, total=total, completed=done)
        return lambda n: self.progress.advance(task, n)

    def log(self, line: str) -> None:
        self.progress.console.print(f"[{time.perf_counter() - self.started:6.1f} s] {line}", markup=False, highlight=False)


def result_summary(result, elapsed: float) -> dict:
    evaluations = {label: t["metrics"] for label, t in result.timings.items() if t["produces"] == "eval"}
    reports = [o.path for o in result.outputs.values() if o.kind == "report"]
    return {
        "run_dir": str(result.run_dir),
        "seconds": round(elapsed, 1),
        "stages": result.timings,
        "results": evaluations,
        "changes": paired_changes(result.run_dir, result.timings),
        "report": reports[-1] if reports else None,
    }


def paired_changes(run_dir: Path, timings: dict) -> dict[str, dict[str, dict]]:
    """Each evaluation against the evaluation before it, on every problem set both graded (the
    report's comparison pairs runs the same way, with the same `paired_change`):
    {label: {problem set: {"vs", "points", "better", "worse", "same", "p", "shared", "before", "after"}}}."""
    from functools import cache

    from reasonloop.report.build import paired_change
    from reasonloop.report.rundata import load_run

    read = cache(lambda path: load_run(Path(run_dir, path)))  # a middle evaluation is compared twice, read once
    evaluations = [(label, t["runs"]) for label, t in timings.items() if t.get("runs")]
    changes: dict[str, dict[str, dict]] = {}
    for (before_label, before), (label, after) in zip(evaluations, evaluations[1:]):
        for suite in (s for s in after if s in before):
            change = paired_change(read(before[suite]), read(after[suite]))
            changes.setdefault(label, {})[suite] = {"vs": before_label, **change.to_dict()}
    return changes


def accuracy_cell(accuracy: float, change: dict | None) -> str:
    if not change or change["points"] is None:
        return f"{100 * accuracy:.1f}%"
    from reasonloop.stats import p_value_text

    return f"{100 * accuracy:.1f}%\n{change['points']:+.1f}, {p_value_text(change['p'])}"


def print_summary(console, summary: dict) -> None:
    from rich.table import Table

    results = summary["results"]
    if results:
        columns = list(dict.fromkeys(name for row in results.values() for name in row))
        changes = summary.get("changes", {})
        table = Table(title="accuracy (verified, greedy)",
                      caption="under each accuracy: points vs the row above on the same problems, sign-test p"
                      if changes else None)
        table.add_column("stage")
        for name in columns:
            table.add_column(name, justify="right")
        for label, row in results.items():
            change = changes.get(label, {})
            table.add_row(label, *(accuracy_cell(row[c], change.get(c)) if c in row else "-" for c in columns))
        console.print(table)
    computed = sum(t["status"] == "computed" for t in summary["stages"].values())
    console.print(f"{len(summary['stages'])} stages ({computed} computed, {len(summary['stages']) - computed} reused) "
                  f"in {summary['seconds']:.0f} s; run directory: {summary['run_dir']}")
    if summary["report"]:
        console.print(f"report: {summary['report']}")


# ---------------------------------------------------------------- cache


@cache_app.command("ls")
def cache_ls(
    cache_dir: Optional[Path] = typer.Option(None, help="Result cache (default: $REASONLOOP_CACHE or ~/.cache/reasonloop)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Items, shards and bytes per cache namespace (one per stage kind)."""
    from reasonloop.pipeline.cache_admin import cache_stats

    rows = cache_stats(cache_dir)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cache {rows[0]['path'].rsplit('/', 1)[0] if rows else cache_dir or ''}")
    for column in ("namespace", "items", "shards", "MB", "corrupt"):
        table.add_column(column, justify="left" if column == "namespace" else "right")
    for row in rows:
        table.add_row(row["namespace"], str(row["items"]), str(row["shards"]), f"{row['bytes'] / 1e6:.2f}",
                      str(row["corrupt"]))
    Console().print(table)


@cache_app.command("gc")
def cache_gc(
    cache_dir: Optional[Path] = typer.Option(None, help="Result cache (default: $REASONLOOP_CACHE or ~/.cache/reasonloop)."),
    keep: List[Path] = typer.Option([], "--keep", help="Keep only items used by these run directories (repeatable)."),
) -> None:
    """Merge shards into one per namespace, drop quarantined shards, and (with --keep) unused items."""
    from reasonloop.pipeline.cache_admin import collect_garbage

    for line in collect_garbage(cache_dir, keep):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("quickstart")(quickstart)
    app.add_typer(cache_app, name="cache")
