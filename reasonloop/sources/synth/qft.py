"""Question Fine-Tuning (ScaleQuest's QFT): teach a model to write questions from a minimal prompt.

As in the paper, the model is trained on questions alone: the prompt is the fixed text
`QFT_PROMPT`, the completion a training question; no answers, no solutions. Training is the
existing SFT trainer (`reasonloop.train.sft`) on a copy of the model whose saved prompt format
is the question-writing one, so every later load asks it the same way. Questions are then
sampled with temperature for diversity.

    from reasonloop.sources.synth.qft import generate_questions, train_qft
    writer = train_qft("runs/sft", train_problems, "runs/qft")
    drawn = generate_questions(writer, 200, temperature=1.0)
    print(drawn.counts, drawn.problems[0].meta["synth"])
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.prompts import PLAIN_FORMAT, PromptFormat, load_prompt_format
from reasonloop.records import Problem

if TYPE_CHECKING:
    from reasonloop.train.sft import SFTSettings

QFT_PROMPT = "Write a math word problem."
QFT_FORMAT = PromptFormat(name="qft", prompt="{question}\nQuestion:", target=" {solution}", stop=("\n",))


def staged_with_format(model: str | Path, prompt_format: PromptFormat, staging: Path) -> Path:
    """`staging`: the model's files linked (not copied), with `prompt_format` saved instead of its own."""
    source = Path(model)
    if not source.is_dir():
        raise ReasonloopError(f"model {model}: question synthesis needs a local model directory")
    staging.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != "reasonloop_prompt.json" and item.name != "manifest.json":
            os.symlink(item.resolve(), staging / item.name)
    prompt_format.save(staging)
    return staging


def writer_format(model: str | Path, template: PromptFormat) -> PromptFormat:
    """The writer's format, keeping the base model's chat setting."""
    base = load_prompt_format(model) if (Path(model) / "reasonloop_prompt.json").is_file() else PLAIN_FORMAT
    return replace(template, chat=base.chat, prompt=template.prompt if not base.chat else "{question}")


def train_writer(model: str | Path, rows: Sequence[tuple[str, str]], out_dir: str | Path, prompt_format: PromptFormat,
                 settings: "SFTSettings | None" = None) -> Path:
    """SFT `model` on (prompt, completion) text pairs in `prompt_format` (the existing SFT trainer)."""
    from reasonloop.train.sft import SFTSettings, train_sft

    problems = [Problem(question=prompt, answer="-", solution=completion) for prompt, completion in rows]
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".writer-base.", dir=Path(out_dir).parent) as staging:
        base = staged_with_format(model, prompt_format, Path(staging) / "model")
        return train_sft(base, problems, out_dir, settings or SFTSettings(learning_rate=2e-3, epochs=3))


def train_qft(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
              settings: "SFTSettings | None" = None) -> Path:
    """Fine-tune `model` to write questions like the problems' questions (questions only)."""
    questions = [p.question.strip() for p in problems if p.question.strip()]
    if not questions:
        raise ReasonloopError("qft: no questions to train on")
    return train_writer(model, [(QFT_PROMPT, q) for q in questions], out_dir, writer_format(model, QFT_FORMAT), settings)


@dataclass
class Drawn:
    """Sampled questions as Problem records (answer empty until the solvability filter sets one)."""

    problems: list[Problem]
    counts: dict[str, int] = field(default_factory=dict)


def provenance(method: str, generator: str, **extra) -> dict:
    return {"synth": {"method": method, "generator": generator, "filters": {}, **extra}}


def generate_questions(writer: str | Path, n: int, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                       max_new_tokens: int = 96, batch_size: int = 64, method: str = "qft") -> Drawn:
    """`n` questions sampled from a question writer (seeded: sample i from (seed, i));
    failed or blank generations are counted, not returned."""
    from reasonloop.models import load_generator
    from reasonloop.models.base import SamplingParams, generate_each

    if n < 1 or temperature <= 0:
        raise ReasonloopError(f"generate: need n >= 1 and temperature > 0 (diversity), got n={n}, temperature={temperature}")
    fmt = load_prompt_format(writer)
    generator = load_generator(str(writer), batch_size=batch_size)
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                            **fmt.decoding())
    completions = generate_each(generator, [(fmt.message(QFT_PROMPT), params)])[0]
    fingerprint = generator.fingerprint()
    problems, counts = [], {"sampled": n, "generation_failed": 0, "blank": 0}
    for index, completion in enumerate(completions):
        text = completion.text.strip()
        if completion.error:
            counts["generation_failed"] += 1
        elif not text:
            counts["blank"] += 1
        else:
            meta = provenance(method, fingerprint, sample=index, seed=seed, temperature=temperature)
            problems.append(Problem(question=text, answer="", source=f"synth:{method}", meta=meta))
    counts["returned"] = len(problems)
    return Drawn(problems, counts)
