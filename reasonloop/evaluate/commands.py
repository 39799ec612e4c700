"""`reasonloop eval`, `suites`, `contamination` and `decontaminate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

STRATEGY_HELP = ("A registered strategy (`reasonloop strategies` lists them): greedy (1 sample, temperature 0), "
                 "sample (n samples: pass@k), majority (n samples, majority vote), ...")
FALLBACK_HELP = ("Also count a completion's last number when it states no final answer (\\boxed{}, ####, "
                 "'the answer is'); for models that do not follow the format. Off: final form only.")
DEFAULT_BATCH_SIZE = 16


def eval_command(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name (see `reasonloop suites`) or a suite .yaml file."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write (resumed if it exists)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model dir, .gguf file, Hub id or server URL."),
    attempts: Optional[Path] = typer.Option(None, help="Grade these Attempt records instead of generating."),
    strategy: Optional[str] = typer.Option(None, help=STRATEGY_HELP),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Samples per problem for sample / majority."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Generated tokens the strategy may spend per problem."),
    limit: Optional[int] = typer.Option(None, help="Evaluate only the first N problems."),
    data: Optional[str] = typer.Option(None, help="Dataset path or template dir replacing the suite's source."),
    backend: Optional[str] = typer.Option(None, help="Model backend: auto (the default), hf, openai, vllm."),
    batch_size: Optional[int] = typer.Option(
        None, help=f"Problems per generation batch (part of the cache key; default {DEFAULT_BATCH_SIZE})."),
    last_number_fallback: bool = typer.Option(False, "--last-number-fallback", help=FALLBACK_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON."),
) -> None:
    """Evaluate a model on a suite and write a run directory (manifest, records, metrics)."""
    from reasonloop.errors import ReasonloopError
    from reasonloop.evaluate.runner import evaluate_attempts, evaluate_suite
    from reasonloop.evaluate.suites import load_suite, refuse_unread_data

    if strategy is not None:
        from reasonloop.search import get_strategy

        get_strategy(strategy)  # an unknown name lists the registered ones
    if (model is None) == (attempts is None):
        raise ReasonloopError("give exactly one of --model (generate) or --attempts (grade existing completions)")
    # every refusal comes before a model is loaded or a file is written
    chosen = load_suite(suite)
    if last_number_fallback:
        chosen = chosen.model_copy(update={"last_number_fallback": True})
    refuse_unread_data(chosen, data)
    if attempts is not None:
        from reasonloop.records import Attempt, load

        refuse_generation_options({"--n": n, "--limit": limit, "--backend": backend, "--batch-size": batch_size,
                                   "--budget": budget})
        metrics = evaluate_attempts(load(attempts, Attempt), chosen, out, data=data, strategy=strategy)
    else:
        from reasonloop.models import load_generator

        chosen.with_strategy(strategy, n).solve_settings(batch_size=batch_size or DEFAULT_BATCH_SIZE, budget=budget)
        generator = load_generator(model, backend=backend or "auto")
        metrics = evaluate_suite(generator, chosen, out, model_dir=model, data=data, limit=limit, strategy=strategy,
                                 n=n, budget=budget, batch_size=batch_size or DEFAULT_BATCH_SIZE)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        print_metrics(metrics, out)


def refuse_generation_options(options: dict[str, object]) -> None:
    """Options that only shape generation mean nothing when grading existing attempts."""
    from reasonloop.errors import ReasonloopError

    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ReasonloopError(f"{', '.join(given)} only apply when generating with --model; --attempts grades "
                              f"completions that already exist (leave {'them' if len(given) > 1 else 'it'} out)")


def print_metrics(metrics: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    low, high = metrics["accuracy_ci95"]
    table = Table(title=f"{metrics['suite']} ({metrics['strategy']}, {metrics['n_problems']} problems "
                        f"x {metrics['n_samples']} samples)")
    for column in ("metric", "value"):
        table.add_column(column)
    table.add_row("accuracy", f"{100 * metrics['accuracy']:.1f}%  [95% CI {100 * low:.1f}-{100 * high:.1f}]")
    for k, value in metrics["pass_at_k"].items():
        table.add_row(f"pass@{k} / maj@{k}", f"{100 * value:.1f}% / {100 * metrics['maj_at_k'][k]:.1f}%")
    table.add_row("mean tokens", f"{metrics['mean_tokens']:.1f}")
    table.add_row("verdicts", ", ".join(f"{s} {c}" for s, c in metrics["status_counts"].items() if c))
    robustness = metrics.get("robustness")
    if robustness and robustness.get("sets"):
        table.add_row(f"instance sets ({len(robustness['sets'])})",
                      f"mean {100 * robustness['mean']:.1f}% ± {100 * robustness['std']:.1f}, "
                      f"range {100 * robustness['min']:.1f}-{100 * robustness['max']:.1f}%")
    for kind, result in (robustness or {}).get("perturbations", {}).items():
        drop = "" if result["drop"] is None else f" (drop {100 * result['drop']:+.1f} points)"
        table.add_row(f"perturbed: {kind}", f"{100 * result['accuracy']:.1f}%{drop}")
    console = Console()
    console.print(table)
    console.print(f"run written to {out}")


def suites_command() -> None:
    """List the built-in suites and their perturbation variants."""
    from reasonloop.evaluate.suites import known_suites, load_suite

    for name in known_suites():
        suite = load_suite(name)
        typer.echo(f"{name:<28} {suite.description}" + (f" + {suite.perturb} perturbation" if suite.perturb else ""))


def load_suites(names: List[str], data: Optional[str]):
    from reasonloop.evaluate.suites import load_suite, suite_problems

    return {name: suite_problems(load_suite(name), data=data) for name in names}


def contamination_command(
    train: Path = typer.Argument(..., help="Training JSONL (any fields: every string in a row is checked)."),
    suite: List[str] = typer.Option(..., "--suite", "-s", help="Suite(s) to check against."),
    data: Optional[str] = typer.Option(None, help="Dataset path or template dir replacing the suite's source."),
    ngram: int = typer.Option(13, "--ngram", help="Word n-gram size."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """List training rows that share an n-gram with a suite's questions."""
    from reasonloop.evaluate.contamination import check_contamination

    report = check_contamination(train, load_suites(suite, data), n=ngram)
    print_report(report, as_json)


def decontaminate_command(
    train: Path = typer.Argument(..., help="Training JSONL to clean."),
    suite: List[str] = typer.Option(..., "--suite", "-s", help="Suite(s) whose questions must not leak."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the kept rows."),
    data: Optional[str] = typer.Option(None, help="Dataset path or template dir replacing the suite's source."),
    ngram: int = typer.Option(13, "--ngram", help="Word n-gram size."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Write TRAIN without the rows that overlap a suite, and report how many were removed."""
    from reasonloop.evaluate.contamination import decontaminate

    report = decontaminate(train, load_suites(suite, data), out, n=ngram)
    print_report(report, as_json)
    if not as_json:
        typer.echo(f"removed {len(report.flagged_lines)} of {report.rows} rows; kept rows written to {out}")


def print_report(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    for flag in report.flags:
        typer.echo(f"{report.path}:{flag.line}  {flag.suite}/{flag.problem_id}  shares {report.n}-gram "
                   f"\"{flag.ngram}\"")
    counts = ", ".join(f"{s}: {c} items" for s, c in report.by_suite().items()) or "none"
    typer.echo(f"{len(report.flagged_lines)} of {report.rows} training rows overlap ({counts})")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("suites")(suites_command)
    app.command("contamination")(contamination_command)
    app.command("decontaminate")(decontaminate_command)
