"""The `reasonloop` command. Thin: each package adds its commands in its `commands.py`
through `register(app)`; this module only assembles them and turns errors into one line.

Command modules must import heavy libraries (torch, transformers) inside the command
functions, so `reasonloop --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from reasonloop import __version__

COMMAND_MODULES = (
    "reasonloop.sources.commands",
    "reasonloop.models.commands",
    "reasonloop.verify.commands",
    "reasonloop.verify.doctor",
    "reasonloop.train.commands",
    "reasonloop.search.commands",
    "reasonloop.evaluate.commands",
    "reasonloop.report.commands",
    "reasonloop.pipeline.commands",
)

app = typer.Typer(
    name="reasonloop",
    help="Synthesize, solve, verify, train and evaluate verifiable reasoning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"reasonloop {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True, help="Print the version."),
) -> None:
    """reasonloop: the verifiable-reasoning loop, end to end."""


def register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that package has no commands yet
                continue
            raise
        module.register(app)


register_all()


def main() -> None:
    """Entry point: run the app; user-facing errors become one line and exit code 1."""
    from reasonloop.errors import USER_ERRORS

    try:
        exit_code = app(standalone_mode=False)
        sys.exit(exit_code or 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except USER_ERRORS as exc:
        if os.environ.get("REASONLOOP_DEBUG"):
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if is_usage_error(exc):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def is_usage_error(exc: Exception) -> bool:
    """A click usage error (unknown option, bad value), which carries its own message and exit code:
    click's own class or the copy of click that typer >= 0.24 vendors (`typer._click`)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


if __name__ == "__main__":
    main()
