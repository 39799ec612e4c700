"""Supervised fine-tuning on worked solutions (gold, or verified samples) with TRL's SFTTrainer.

    from reasonloop.train.sft import SFTSettings, train_sft
    train_sft("runs/tiny", problems, "runs/sft", SFTSettings(epochs=12))

The loss covers the completion only (the worked solution and `#### answer`), not the
question. The model's prompt format (`reasonloop_prompt.json`) is kept in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.records import Problem
from reasonloop.train import common
from reasonloop.train.registry import register_trainer


@dataclass
class SFTSettings(common.TrainSettings):
    """SFT settings: the shared optimisation settings plus

    Attributes:
        max_length: longest tokenized prompt + completion kept (longer ones are truncated).
        group_by_length: batch sequences of similar length together (less padding, faster on CPU).
    """

    max_length: int = 512
    group_by_length: bool = True


@register_trainer("sft", settings=SFTSettings, help="Supervised fine-tuning on worked solutions.")
def train_sft(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
              settings: SFTSettings | None = None) -> Path:
    """Fine-tune `model` on the problems' worked solutions; returns `out_dir` (a standard HF dir)."""
    settings = settings or SFTSettings()
    from trl import SFTConfig, SFTTrainer

    common.check_problems(problems, "sft", need_solutions=True)
    out_dir = Path(out_dir)
    loaded = common.load_for_training(model)
    lora = common.use_lora(settings, loaded.model)
    rows = common.sft_rows(problems, loaded.prompt_format, 
                              annotations=settings.calculator_annotations or loaded.prompt_format.calculator)
    config = SFTConfig(**settings.trainer_args(out_dir), per_device_train_batch_size=settings.batch_size,
                       max_length=settings.max_length, completion_only_loss=True,
                       train_sampling_strategy="group_by_length" if settings.group_by_length else "random")
    guard = common.divergence_guard()
    return common.fit(SFTTrainer, "train-sft", loaded, settings, out_dir, rows, lora=lora, guard=guard,
                      manifest_extra={"n_problems": len(problems)}, args=config)
