"""`reasonloop strategies`: the registered test-time strategies."""

from __future__ import annotations

import inspect
import json

import typer


def strategies(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the strategies `--strategy` (eval) and recipes (`strategy:`) accept."""
    from reasonloop.search import get_strategy, strategy_names

    rows = []
    for name in strategy_names():
        strategy = get_strategy(name)
        doc = inspect.getdoc(strategy) or ""
        rows.append({"name": name, "needs_logprobs": strategy.needs_logprobs, "summary": doc.split("\n")[0]})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        typer.echo(f"{row['name']:<{width}}  {row['summary']}" + ("  [needs log-probabilities]" if row["needs_logprobs"] else ""))


def register(app: typer.Typer) -> None:
    app.command("strategies")(strategies)
