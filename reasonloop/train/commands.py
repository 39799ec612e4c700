"""`reasonloop train NAME --model PATH --data FILE --out DIR ...`: one command per registered trainer
(`reasonloop.train.registry`), so a new trainer needs no edit here."""

from __future__ import annotations

import inspect
import json
from dataclasses import fields
from typing import Any, Callable, List, Optional

import typer

from reasonloop.train.registry import Trainer, get_trainer, trainer_names

train_app = typer.Typer(help="Train on verified data; one command per registered trainer.", no_args_is_help=True)

MODEL = typer.Option(..., "--model", help="Model to start from: a directory, a .gguf file or a Hub id.")
DATA = typer.Option(..., "--data", help="Problems (JSONL/Parquet Problem records, or a preset source).")
OUT = typer.Option(..., "--out", help="Output directory (a rerun resumes from its last checkpoint).")
LIMIT = typer.Option(None, "--limit", min=1, help="Use only the first N problems.")
SET = typer.Option(None, "--set", help="A settings field, KEY=VALUE (repeatable), e.g. --set epochs=8 --set lora=true.")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def make_settings(method: str, pairs: List[str] | None) -> Any:
    """The trainer's settings dataclass from KEY=VALUE pairs; unknown keys name the allowed ones."""
    from reasonloop.errors import ReasonloopError

    cls = get_trainer(method).settings
    allowed = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ReasonloopError(f"--set {pair!r}: expected KEY=VALUE")
        if key.startswith("sft.") and "sft" in allowed:  # rft's nested fine-tuning settings
            values.setdefault("sft", {})[key[4:]] = parse_value(raw)
            continue
        if key not in allowed:
            raise ReasonloopError(f"--set {key}: unknown {method} setting; allowed: {', '.join(allowed)}")
        values[key] = parse_value(raw)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ReasonloopError(f"{method} settings: {exc}") from None


def read_problems(data: str, limit: int | None):
    from reasonloop.sources.datasets import load_problems

    return load_problems(data, limit=limit).records


def report(payload: dict, as_json: bool) -> None:
    typer.echo(json.dumps(payload, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in payload.items()))


def trainer_command(trainer: Trainer) -> Callable[..., None]:
    """A command with the shared options plus one `--NAME FILE` per further problem set the trainer reads."""

    def command(model: str, data: str, out: str, limit: Optional[int], set_: Optional[List[str]], as_json: bool,
                **inputs: Optional[str]) -> None:
        settings = make_settings(trainer.name, set_)
        given = {name: read_problems(path, None) for name, path in inputs.items() if path}
        result = trainer.run(model, read_problems(data, limit), out, settings, **given)
        if not as_json and result.table():
            typer.echo(result.table())
        report({"model": str(result.model_dir)}, as_json)

    shared = [("model", MODEL), ("data", DATA), ("out", OUT), ("limit", LIMIT), ("set_", SET),
              ("as_json", typer.Option(False, "--json", help="Print the result as JSON."))]
    types = {"model": str, "data": str, "out": str, "limit": Optional[int], "set_": Optional[List[str]], "as_json": bool}
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=types[name])
                  for name, default in shared]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                                     default=typer.Option(None, f"--{name}", help=help))
                   for name, help in trainer.inputs.items()]
    command.__signature__ = inspect.Signature(parameters)
    command.__doc__ = trainer.help
    return command


def register(app: typer.Typer) -> None:
    for name in trainer_names():
        train_app.command(name)(trainer_command(get_trainer(name)))
    app.add_typer(train_app, name="train")
