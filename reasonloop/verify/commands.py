"""`reasonloop verify ATTEMPTS.jsonl [--problems PROBLEMS.jsonl] -o verdicts.jsonl`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from reasonloop.errors import ReasonloopError


def verify_command(
    attempts: Path = typer.Argument(..., help="Attempt records (JSONL or Parquet)."),
    problems: Optional[Path] = typer.Option(
        None, help="Problem records holding the reference answers (default: problems.jsonl beside ATTEMPTS)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the Verdict records (JSONL or Parquet)."),
    kind: str = typer.Option("auto", help="Where --last-number-fallback applies: auto (plain-number references), "
                                           "math (nowhere) or numeric (every reference)."),
    last_number_fallback: bool = typer.Option(
        False, "--last-number-fallback", help="Also take the last number of a completion with no final answer "
                                              "(for models that do not follow the format; off: final form only)."),
    decimal_digits: int = typer.Option(
        6, help="Significant digits from which a decimal stands for the values it rounds or truncates (3-15; "
                "the verifier id records any other value than 6)."),
    timeout: float = typer.Option(5.0, help="Seconds math-verify may spend on one answer."),
    workers: Optional[int] = typer.Option(None, help="Grader processes (default: the CPU count)."),
    limit: Optional[int] = typer.Option(None, help="Grade only the first N attempts."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Grade attempts against their problems' reference answers and write verdicts."""
    from reasonloop.records import Attempt, Problem, load, write_records
    from reasonloop.verify.compare import check_decimal_digits
    from reasonloop.verify.grade import grade_batch, verifier_id

    refuse_unused_kind(kind, last_number_fallback)
    check_decimal_digits(decimal_digits)
    problems = problems or attempts.parent / "problems.jsonl"
    if not problems.exists():
        raise ReasonloopError(f"{problems}: no such file (pass --problems with the reference answers)")
    answers = {problem.id: problem.answer for problem in load(problems, Problem)}
    records = load(attempts, Attempt)[:limit]
    references = [reference_for(attempts, line, attempt, answers, problems) for line, attempt in enumerate(records, 1)]
    verdicts = grade_batch([(a.completion, ref) for a, ref in zip(records, references)],
                           kind=kind, timeout=timeout, workers=workers, last_number_fallback=last_number_fallback,
                           decimal_digits=decimal_digits)
    for attempt, verdict in zip(records, verdicts):
        verdict.problem_id, verdict.sample_index = attempt.problem_id, attempt.sample_index
    write_records(output, verdicts)
    stamp = verifier_id(last_number_fallback, decimal_digits)
    summary = summarize([verdict.status for verdict in verdicts], stamp, output)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)


def refuse_unused_kind(kind: str, last_number_fallback: bool) -> None:
    """`--kind` only says where the last-number fallback applies; without it, numeric changes nothing."""
    if kind == "numeric" and not last_number_fallback:
        raise ReasonloopError("--kind numeric only widens --last-number-fallback to every reference; "
                              "add --last-number-fallback or leave --kind out (answers count only in final form)")


def reference_for(path: Path, line: int, attempt, answers: dict[str, str], problems: Path) -> str:
    from reasonloop.records import RecordError

    if attempt.problem_id not in answers:
        raise RecordError(path, line, "problem_id", f"no problem with id {attempt.problem_id!r} in {problems}")
    return answers[attempt.problem_id]


def summarize(statuses: list[str], verifier: str, output: Path) -> dict:
    from reasonloop.records import VERDICT_STATUSES

    counts = Counter(statuses)
    total = len(statuses)
    return {
        "total": total,
        "counts": {status: counts.get(status, 0) for status in VERDICT_STATUSES},
        "accuracy": counts["correct"] / total if total else 0.0,
        "verifier": verifier,
        "output": str(output),
    }


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"verdicts ({summary['verifier']})")
    table.add_column("status")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for status, count in summary["counts"].items():
        table.add_row(status, str(count), f"{count / summary['total']:.1%}" if summary["total"] else "-")
    console = Console()
    console.print(table)
    console.print(f"accuracy {summary['accuracy']:.1%} on {summary['total']} attempts; wrote {summary['output']}")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
