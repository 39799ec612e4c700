"""The `tiny_model` stage: a tiny Llama built from scratch (and what the training stages share with it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from reasonloop.pipeline.contract import StageConfig, StageOutput, fingerprint_path, register_stage, settings_object
from reasonloop.prompts import PromptFormat
from reasonloop.records import Problem, load


def training_texts(problems: list[Problem], prompt_format: PromptFormat) -> list[str]:
    """Prompt + target as the trainers render them in `prompt_format` (calculator calls kept if it uses them)."""
    from reasonloop.train.common import target_text

    return [prompt_format.render_prompt(p.question) + target_text(p, prompt_format, annotations=prompt_format.calculator)
            for p in problems]


def model_output(path: Path, **meta: Any) -> StageOutput:
    return StageOutput("model", str(path), fingerprint_path(path), meta)


@register_stage("tiny_model")
class TinyModelStage(StageConfig):
    """A tiny Llama built from scratch, its tokenizer trained on the `corpus` problems."""

    refs: ClassVar = {"corpus": ("problems",)}
    produces: ClassVar = "model"

    corpus: list[str] = Field(description="Problems stages whose text trains the tokenizer.")
    config: dict[str, Any] = Field(default_factory=dict, description="TinyConfig fields (hidden_size, num_layers, ...).")
    vocab_size: int = Field(512, ge=64, description="Tokenizer vocabulary size (BPE part).")
    number_tokens: int = Field(1000, ge=0, description="Integers below this are single tokens (0: digit by digit).")
    calculator: bool = Field(True, description="Solutions keep <<48/2=24>> calls, answered by the calculator.")

    def preflight(self) -> None:
        from reasonloop.models.tiny import TinyConfig

        settings_object(TinyConfig, self.config, f"{self.name}.config")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.models.tiny import TinyConfig, create_tiny_model
        from reasonloop.prompts import PLAIN_FORMAT

        config = settings_object(TinyConfig, self.config, f"{self.name}.config")
        prompt_format = replace(PLAIN_FORMAT, calculator=self.calculator)
        texts = [t for o in inputs["corpus"] for t in training_texts(load(o.path, Problem), prompt_format)]
        path = create_tiny_model(out_dir / "model", texts, config, vocab_size=self.vocab_size, seed=seed,
                                 number_tokens=self.number_tokens)
        prompt_format.save(path)  # the format its tokenizer was trained on; training keeps it
        return model_output(Path(path))
