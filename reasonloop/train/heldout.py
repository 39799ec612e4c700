"""Greedy held-out accuracy of a checkpoint (McNemar's test to compare two is in `reasonloop.stats`).

    from reasonloop.train import evaluate_accuracy, mcnemar
    before, after = evaluate_accuracy("runs/sft", heldout), evaluate_accuracy("runs/rft", heldout)
    print(after.summary(), mcnemar(before.correct, after.correct))

Minimal on purpose: the evaluation package (`reasonloop.evaluate`) has the full suite runner
(pass@k, robustness, run directories for the report). Both grade with `verify.grade_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from reasonloop.records import Problem


@dataclass
class AccuracyReport:
    """Per-problem greedy correctness, with the accuracy per `meta["steps"]`."""

    model: str
    correct: list[bool]
    steps: list[int | None]
    completions: list[str] = field(default_factory=list, repr=False)

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / self.n if self.n else 0.0

    def by_steps(self) -> dict[int | None, tuple[int, int]]:
        """{steps: (correct, total)}."""
        table: dict[int | None, list[int]] = {}
        for ok, steps in zip(self.correct, self.steps):
            cell = table.setdefault(steps, [0, 0])
            cell[0] += ok
            cell[1] += 1
        return {steps: (c, t) for steps, (c, t) in sorted(table.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}

    def summary(self) -> str:
        parts = ", ".join(f"{s} steps {c}/{t} = {c / t:.1%}" for s, (c, t) in self.by_steps().items())
        return f"accuracy {self.accuracy:.1%} ({sum(self.correct)}/{self.n}); by steps: {parts}"


def evaluate_accuracy(model_dir: str | Path, problems: Sequence[Problem], *, batch_size: int = 64,
                      max_new_tokens: int = 192, server: str | None = None) -> AccuracyReport:
    """Greedy accuracy of `model_dir` on `problems`, asked in the model's saved prompt format
    (through a server holding the checkpoint when `server` is an OpenAI-compatible URL)."""
    from reasonloop.prompts import load_prompt_format
    from reasonloop.search import SolveSettings
    from reasonloop.solve import solve
    from reasonloop.train.sampling import checkpoint_generator

    settings = SolveSettings(strategy="greedy", max_new_tokens=max_new_tokens, batch_size=batch_size)
    solved = solve(problems, checkpoint_generator(model_dir, server, batch_size), settings, prompt_format=load_prompt_format(model_dir), label="evaluating")
    texts = [result.candidates[0].completion for result in solved.results]
    return AccuracyReport(str(model_dir), solved.correct(), [p.meta.get("steps") for p in problems], texts)
