"""Reward models at test time: an outcome (ORM) or process (PRM) reward model scores solutions.

Both are a causal LM with a two-class token head (`AutoModelForTokenClassification`),
trained by `reasonloop.train.prm`: the score of a step is P(class 1) at the last token of
the step (steps from `reasonloop.search.steps`), read in one forward pass over prompt +
solution. A PRM was trained on every step's label (Math-Shepherd); an ORM only on the last
step's (the outcome), so its score of a solution is its last step's.

    rm = RewardModel.load("runs/prm")
    rm.step_scores(["Question: ...\\nAnswer:"], [[" 3 + 4 = 7.\\n", "#### 7"]])   # [[0.71, 0.64]]
    aggregate([0.71, 0.64], "min")                                               # 0.64

The model dir holds `reasonloop_reward.json` ({"kind": "prm" | "orm"}) beside its weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from reasonloop.errors import ReasonloopError

REWARD_FILE = "reasonloop_reward.json"
AGGREGATES = ("min", "last", "product", "mean")


class RewardModelError(ReasonloopError):
    """A reward model that cannot be loaded or does not fit the generator."""


def aggregate(scores: Sequence[float], how: str) -> float | None:
    """One score from a solution's step scores: `min` (weakest step), `last`, `product` or `mean`; None with no steps."""
    if not scores:
        return None
    if how == "min":
        return min(scores)
    if how == "last":
        return scores[-1]
    if how == "product":
        return math.prod(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    raise RewardModelError(f"unknown aggregate {how!r}; choose one of {', '.join(AGGREGATES)}")


@dataclass
class RewardModel:
    model: Any
    tokenizer: Any
    kind: str = "prm"
    path: str = ""
    batch_size: int = 16
    calls: int = 0  # forward passes over one solution each (reward-model calls, counted apart)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> "RewardModel":
        path = Path(path)
        meta_file = path / REWARD_FILE
        if not meta_file.is_file():
            raise RewardModelError(f"{path} is not a reward model: no {REWARD_FILE} (train one with `reasonloop train prm`)")
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        meta = json.loads(meta_file.read_text())
        tokenizer = AutoTokenizer.from_pretrained(path)
        from reasonloop.models.hf import pick_device

        model = AutoModelForTokenClassification.from_pretrained(path).to(pick_device(device)).eval()
        return cls(model, tokenizer, meta.get("kind", "prm"), str(path))

    def check_tokenizer(self, generator: Any) -> None:
        """A reward model reads the generator's text with the tokenizer it was trained with; a different
        vocabulary means it was trained on another model's outputs: refused (generators without a
        tokenizer, e.g. a server, are not checked)."""
        other = getattr(generator, "tokenizer", None)
        if other is None:
            return
        if other.get_vocab() != self.tokenizer.get_vocab():
            raise RewardModelError(f"reward model {self.path}: its tokenizer ({len(self.tokenizer)} tokens) is not the "
                                   f"generator's ({len(other)} tokens); train the reward model from this generator")

    def step_scores(self, prompts: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        """P(good) at the end of each step of each solution (a solution given as its steps)."""
        out: list[list[float]] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._score_batch(prompts[start : start + self.batch_size], solutions[start : start + self.batch_size]))
        return out

    def _score_batch(self, prompts: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        import torch

        encoded = [step_positions(self.tokenizer, prompt, steps) for prompt, steps in zip(prompts, solutions)]
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([row + [pad] * (width - len(row)) for row, _ in encoded])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row, _ in encoded])
        with torch.inference_mode():
            probs = torch.softmax(self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits.float(), -1)[..., 1]
        self.calls += len(prompts)
        return [[float(probs[i, p]) for p in positions] for i, (_, positions) in enumerate(encoded)]

    def solution_scores(self, prompts: Sequence[str], solutions: Sequence[Sequence[str]], how: str) -> list[float | None]:
        """One score per solution: the PRM's step scores aggregated by `how`; an ORM's last step score."""
        scored = self.step_scores(prompts, solutions)
        return [aggregate(s, "last" if self.kind == "orm" else how) for s in scored]


def step_positions(tokenizer: Any, prompt: str, steps: Sequence[str], max_length: int | None = None) -> tuple[list[int], list[int]]:
    """Token ids of prompt + steps and, per step, the index of the token holding its last visible character.

    Shared by training (labels go at these positions) and scoring. A sequence longer than the
    model's window keeps its end (the steps), cut from the left."""
    text = prompt + "".join(steps)
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    ends, cursor = [], len(prompt)
    for step in steps:
        cursor += len(step)
        ends.append(cursor - (len(step) - len(step.rstrip())) - 1)  # last visible character of the step
    positions, token = [], 0
    for end in ends:
        while token < len(ids) - 1 and not (offsets[token][0] <= end < max(offsets[token][1], offsets[token][0] + 1)):
            token += 1
        positions.append(token)
    limit = max_length or getattr(tokenizer, "model_max_length", None) or len(ids)
    if len(ids) > limit:
        drop = len(ids) - limit
        ids = ids[drop:]
        positions = [max(p - drop, 0) for p in positions]
    return ids, positions


LOADED: dict[str, RewardModel] = {}


def load_reward_model(path: str, generator: Any) -> RewardModel:
    """The reward model at `path` (loaded once per process), checked against the generator's tokenizer."""
    if not path:
        raise RewardModelError("this strategy needs a reward model: add reward_model=DIR to the strategy "
                               "(e.g. --strategy best_of_n:reward_model=runs/prm)")
    if path not in LOADED:
        LOADED[path] = RewardModel.load(path)
    LOADED[path].check_tokenizer(generator)
    return LOADED[path]


def reward_candidates(model: RewardModel, attempts: Sequence[Any], how: str) -> int:
    """Split each attempt into steps and set its `steps` and `reward`; an attempt without steps gets
    the `error` NO_STEPS (graded as an error verdict) and no reward. Returns the reward-model calls."""
    from reasonloop.search.steps import NO_STEPS, split_steps

    scorable = []
    for attempt in attempts:
        if attempt.error:
            continue
        attempt.steps = split_steps(attempt.completion)
        if not attempt.steps:
            attempt.error = NO_STEPS
        else:
            scorable.append(attempt)
    if scorable:
        scores = model.solution_scores([a.prompt for a in scorable], [a.steps for a in scorable], how)
        for attempt, score in zip(scorable, scores):
            attempt.reward = score
    return len(scorable)


def best_rewarded(rewards: Sequence[float | None] | None) -> int | None:
    """Index of the highest reward (the first on a tie); None when nothing was scored."""
    scored = [(r, -i) for i, r in enumerate(rewards or []) if r is not None]
    return -max(scored)[1] if scored else None
