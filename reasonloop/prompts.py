"""The prompt format a model is trained with, saved beside its weights.

Training writes `reasonloop_prompt.json` into every checkpoint; generation and evaluation
read it back, so a model is always asked the way it was taught. Models without the file
(e.g. an instruction-tuned Hub model) get `CHAT_FORMAT`, which backends render through the
tokenizer's chat template.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasonloop.atomic import atomic_write_text

PROMPT_FILE = "reasonloop_prompt.json"


@dataclass(frozen=True)
class PromptFormat:
    """`prompt` is filled with the question; `target` with the worked solution and answer."""

    name: str = "plain"
    prompt: str = "Question: {question}\nAnswer:"
    target: str = " {solution}\n#### {answer}"
    stop: tuple[str, ...] = ("\nQuestion:",)
    chat: bool = False  # True: send the prompt as a user message through the chat template
    calculator: bool = False  # solutions carry `<<48/2=24>>` calls, answered by a calculator when decoding

    def render_prompt(self, question: str) -> str:
        return self.prompt.format(question=question)

    def message(self, question: str) -> "str | list[dict[str, str]]":
        """The prompt to send: the rendered text, or a one-message conversation for chat models."""
        text = self.render_prompt(question)
        return [{"role": "user", "content": text}] if self.chat else text

    def render_target(self, solution: str | None, answer: str) -> str:
        if not solution:
            return self.target.replace("{solution}\n", "").format(solution="", answer=answer)
        return self.target.format(solution=solution.strip(), answer=answer)

    def decoding(self) -> dict[str, Any]:
        """The `SamplingParams` fields this format fixes: its stop strings and whether calls get the calculator."""
        return {"stop": self.stop, "calculator": self.calculator}

    def save(self, model_dir: str | Path) -> Path:
        data = asdict(self) | {"stop": list(self.stop)}
        return atomic_write_text(Path(model_dir) / PROMPT_FILE, json.dumps(data, indent=2) + "\n")


PLAIN_FORMAT = PromptFormat()
CHAT_FORMAT = PromptFormat(
    name="chat",
    prompt="{question}\nSolve step by step and end with the line '#### <final answer>'.",
    stop=(),
    chat=True,
)


def load_prompt_format(model_dir: str | Path | None) -> PromptFormat:
    """The format saved with a model; `CHAT_FORMAT` when there is none."""
    if model_dir is not None:
        path = Path(model_dir) / PROMPT_FILE
        if path.is_file():
            data = json.loads(path.read_text())
            data["stop"] = tuple(data.get("stop", ()))
            return PromptFormat(**data)
    return CHAT_FORMAT
