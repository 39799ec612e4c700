"""The trainers, registered once: `reasonloop train` and the pipeline's training stages read this.

Each trainer module registers its train function with its settings dataclass:

    @register_trainer("sft", settings=SFTSettings)
    def train_sft(model, problems, out_dir, settings=None) -> Path: ...

and is found by name (`get_trainer("sft")`), its module imported on first use, as the model
backends are (`reasonloop.models`). A new trainer is one module plus one `TRAINER_MODULES` line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem

TRAINER_MODULES = {
    "sft": "reasonloop.train.sft",
    "rft": "reasonloop.train.rft",
    "dpo": "reasonloop.train.dpo",
    "grpo": "reasonloop.train.grpo",
    "prm": "reasonloop.train.prm",
}


class TrainerError(ReasonloopError):
    """An unknown trainer name: the message lists the registered ones."""


@dataclass
class TrainResult:
    """What every trainer leaves: the trained model's directory (and, per trainer, more)."""

    model_dir: Path

    def meta(self) -> dict[str, Any]:
        """JSON-ready details for the pipeline's stage output (self-training: its rounds)."""
        return {}

    def table(self) -> str:
        """Lines for the terminal ('' when there is nothing beyond the model directory)."""
        return ""


@dataclass(frozen=True)
class Trainer:
    """A registered trainer: its settings dataclass and its train function."""

    name: str
    settings: type
    train: Callable[..., Any]  # (model, problems, out_dir, settings, **inputs) -> Path | TrainResult
    help: str  # one line for `reasonloop train --help`
    inputs: dict[str, str] = field(default_factory=dict)  # further problem sets it reads: keyword -> help

    def run(self, model: str | Path, problems: Sequence[Problem], out_dir: str | Path, settings: Any,
            **inputs: Sequence[Problem]) -> TrainResult:
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise TrainerError(f"{self.name} reads no {unknown[0]!r} problems; it reads: "
                               f"{', '.join(self.inputs) or 'only its training problems'}")
        result = self.train(model, problems, out_dir, settings, **inputs)
        return result if isinstance(result, TrainResult) else TrainResult(Path(result))


TRAINERS: dict[str, Trainer] = {}


def register_trainer(name: str, *, settings: type, help: str, inputs: dict[str, str] | None = None
                     ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `train(model, problems, out_dir, settings, **inputs)` under `name` with its settings class;
    `inputs` names the further problem sets it takes as keyword arguments (with a help line each)."""

    def decorate(train: Callable[..., Any]) -> Callable[..., Any]:
        TRAINERS[name] = Trainer(name, settings, train, help, dict(inputs or {}))
        return train

    return decorate


def trainer_names() -> list[str]:
    return sorted(set(TRAINER_MODULES) | set(TRAINERS))


def get_trainer(name: str) -> Trainer:
    """The trainer registered as `name`, importing its module on first use."""
    if name not in TRAINERS and name in TRAINER_MODULES:
        importlib.import_module(TRAINER_MODULES[name])
    if name not in TRAINERS:
        raise TrainerError(f"unknown trainer {name!r}; registered: {', '.join(trainer_names())}")
    return TRAINERS[name]


__all__ = ["TRAINERS", "TrainResult", "Trainer", "TrainerError", "get_trainer", "register_trainer", "trainer_names"]
