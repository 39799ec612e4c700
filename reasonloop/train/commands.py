"""`reasonloop train sft|rft|dpo|grpo --model PATH --data FILE --out DIR ...`."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, List, Optional

import typer

train_app = typer.Typer(help="Train on verified data: SFT, self-training (RFT), DPO, GRPO.", no_args_is_help=True)

SETTINGS = {
    "sft": ("reasonloop.train.sft", "SFTSettings"),
    "rft": ("reasonloop.train.rft", "RFTSettings"),
    "dpo": ("reasonloop.train.dpo", "DPOSettings"),
    "grpo": ("reasonloop.train.grpo", "GRPOSettings"),
}

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
    """The method's settings dataclass from KEY=VALUE pairs; unknown keys name the allowed ones."""
    import importlib

    from reasonloop.errors import ReasonloopError

    module, name = SETTINGS[method]
    cls = getattr(importlib.import_module(module), name)
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


def sft(model: str = MODEL, data: str = DATA, out: str = OUT, limit: Optional[int] = LIMIT,
        set_: Optional[List[str]] = SET, as_json: bool = typer.Option(False, "--json")) -> None:
    """Supervised fine-tuning on worked solutions."""
    from reasonloop.train.sft import train_sft

    settings = make_settings("sft", set_)
    report({"model": str(train_sft(model, read_problems(data, limit), out, settings))}, as_json)


def rft(model: str = MODEL, data: str = DATA, out: str = OUT, limit: Optional[int] = LIMIT,
        heldout: Optional[str] = typer.Option(None, "--heldout", help="Problems for per-round held-out accuracy."),
        replay: Optional[str] = typer.Option(None, "--replay", help="Problems with worked solutions (e.g. the SFT "
                                                                    "data) added to every round's fine-tuning set."),
        set_: Optional[List[str]] = SET, as_json: bool = typer.Option(False, "--json")) -> None:
    """Self-training rounds (STaR / ReST-EM): sample, keep verified, fine-tune."""
    from reasonloop.train.rft import train_rft

    settings = make_settings("rft", set_)
    held = read_problems(heldout, None) if heldout else None
    replayed = read_problems(replay, None) if replay else None
    result = train_rft(model, read_problems(data, limit), out, settings, heldout=held, replay=replayed)
    if not as_json:
        typer.echo(result.table())
    report({"model": str(result.model_dir)}, as_json)


def dpo(model: str = MODEL, data: str = DATA, out: str = OUT, limit: Optional[int] = LIMIT,
        set_: Optional[List[str]] = SET, as_json: bool = typer.Option(False, "--json")) -> None:
    """DPO on verified-correct vs incorrect attempts of the same problems."""
    from reasonloop.train.dpo import train_dpo

    settings = make_settings("dpo", set_)
    report({"model": str(train_dpo(model, read_problems(data, limit), out, settings))}, as_json)


def grpo(model: str = MODEL, data: str = DATA, out: str = OUT, limit: Optional[int] = LIMIT,
         set_: Optional[List[str]] = SET, as_json: bool = typer.Option(False, "--json")) -> None:
    """GRPO with the verifier as reward."""
    from reasonloop.train.grpo import train_grpo

    settings = make_settings("grpo", set_)
    report({"model": str(train_grpo(model, read_problems(data, limit), out, settings))}, as_json)


def register(app: typer.Typer) -> None:
    for name, function in (("sft", sft), ("rft", rft), ("dpo", dpo), ("grpo", grpo)):
        train_app.command(name)(function)
    app.add_typer(train_app, name="train")
