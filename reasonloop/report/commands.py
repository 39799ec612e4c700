"""`reasonloop report ...`: one offline HTML file over one or more run directories."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def report(
    run_dirs: List[Path] = typer.Argument(..., help="Run directories (runs/NAME) written by `reasonloop eval` or training."),
    output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write."),
    title: Optional[str] = typer.Option(None, help="Page title (default: the run names)."),
) -> None:
    """Write a self-contained HTML report: summary, comparison, plots and a trace viewer."""
    from reasonloop.report.build import build_report

    built = build_report(run_dirs, output, title=title)
    for notice in built.notices:
        typer.echo(f"note: {notice}", err=True)
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, {len(run_dirs)} run(s))")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
