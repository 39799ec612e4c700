"""`mma`: MCTS over which of several models writes the next step, scored by cross-inspection.

As built here (MMA, EMNLP 2025 Findings; the paper's code is not public):

- Generators M0 (the model being evaluated) and M1..Mk (`models=DIR+DIR`, any hf checkpoints
  with the same prompt format). Actions at a node: "Mi writes the next step" for every i,
  and "Mi rewrites the last step" for every i other than the last step's author (the new
  node replaces that step). A node's untried actions are expanded in order (writes, then
  rewrites), one sampled step each; then UCT (c, as in `mcts`) picks among children.
- Cross-inspection value of a step s written by Ma after prefix p: the mean, over the models
  j != a, of exp(mean token log-probability of s given prompt + p under Mj) — how natural
  the other models find it, so no model grades only its own work.
- A node's value is the mean of its steps' values. A finished leaf's value is
  `step_weight` x (its steps' mean value) + `agreement_weight` x (share of the other
  finished leaves whose final answer equals its own); defaults 0.5 and 0.5. During the
  search the agreement counts the leaves found so far; the final choice recomputes it over
  all leaves. No reference answer is used.
- Compute: tokens and calls of every generator are summed; each scoring forward pass of
  an inspecting model is a reward call. Scoring needs the models' weights (hf backend).

    reasonloop eval --model runs/rft --strategy mma:models=runs/sft,iterations=24 --budget 2048 ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from reasonloop.records import Problem, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.mcts import backup, uct_child
from reasonloop.search.simple import answer_key
from reasonloop.search.beam import Search
from reasonloop.search.stepwise import (Budget, Job, Node, expand_many, failed_result, prompt_of, result_of,
                                        step_settings, token_limit)


@dataclass(frozen=True)
class MMAOptions:
    """models: the other generators' directories, joined by '+'; iterations; c: UCT exploration;
    step_weight / agreement_weight: a leaf's value mix; rewrite: allow rewrite actions."""

    models: tuple[str, ...] = ()
    iterations: int = 16
    c: float = 1.4
    step_weight: float = 0.5
    agreement_weight: float = 0.5
    rewrite: bool = True

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise StrategyError(f"iterations must be >= 1, got {self.iterations}")
        if self.step_weight < 0 or self.agreement_weight < 0:
            raise StrategyError("step_weight and agreement_weight must be >= 0")


def mean_logprob(generator: Any, context: str, text: str) -> float:
    """Mean log-probability per token of `text` after `context` under an hf generator's model.

    The boundary is where `context`'s own tokens end (BPE may merge across it; the first
    token of `text` is then scored with the merge, a small, documented approximation)."""
    import torch

    model, tokenizer = generator.model, generator.tokenizer
    context_ids = tokenizer(context)["input_ids"]
    ids = tokenizer(context + text)["input_ids"]
    start = min(len(context_ids), len(ids) - 1)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:], device=model.device)[:, None]).squeeze(1)
    return float(logprobs[start - 1 :].mean())


def final_key(node: Node) -> str | None:
    from reasonloop.verify.extract import extract_answer

    return answer_key(extract_answer(node.text))


@register_strategy("mma")
class MMA:
    """MCTS over which model writes (or rewrites) the next step; cross-inspection values, answer agreement."""

    Options = MMAOptions
    needs_logprobs = False

    def __init__(self, options: MMAOptions | None = None) -> None:
        self.options = options or MMAOptions()

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        if not self.options.models:
            raise StrategyError("strategy mma needs at least one other generator: --strategy mma:models=DIR[+DIR]")
        return step_settings(settings)

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        samplers = [sampler, *(self.other(sampler, path) for path in self.options.models)]
        for each in samplers:
            generator = each.generator()
            if not hasattr(generator, "model") or not hasattr(generator, "tokenizer"):
                raise StrategyError(f"mma scores steps with each model's weights; {generator.name} gives none (use hf)")
        self._values: dict[tuple[str, str, str], float] = {}  # cross-inspection value per (context, step, author)
        self._step_means: dict[tuple[int, int], float] = {}  # (search, node id) -> its steps' mean value
        searches = [Search(p, prompt_of(sampler, p), Budget(token_limit(settings))) for p in problems]
        self.search(searches, samplers, settings)
        return [self.result(index, s, len(samplers)) for index, s in enumerate(searches)]

    @staticmethod
    def other(sampler: Any, path: str) -> Any:
        from reasonloop.solve import GeneratorSpec

        generator = GeneratorSpec(path, "hf").load()
        return sampler.for_generator(generator, generator.fingerprint())

    def search(self, searches: list[Search], samplers: list, settings: SolveSettings) -> None:
        """All problems' trees grow together: each iteration, one action per tree, one call per model."""
        pending: dict[tuple[int, int], list[tuple[int, str]]] = {}
        for iteration in range(self.options.iterations):
            by_model: dict[int, list[tuple[Job, int, str]]] = {}
            for index, s in enumerate(searches):
                node = None if s.budget.spent else self.descend(index, s.root, pending, len(samplers))
                if node is None:
                    continue
                if node.terminal:
                    backup(node, node.value or 0.0)
                    continue
                model, kind = pending[(index, node.id)].pop(0)
                base = None if kind == "write" else Node(-1, node.steps[:-1], node.authors[:-1])
                by_model.setdefault(model, []).append((Job(s.problem, node, s.budget, s.ids, base), index, kind))
            for model, jobs in by_model.items():
                drawn = expand_many(samplers[model], [job for job, _, _ in jobs], 1, settings, salt=f"mma{iteration}",
                                    author=f"m{model}")
                for (job, index, kind), (child,) in zip(jobs, drawn):
                    child.action = f"m{model}:{kind}"
                    if not child.error:
                        self.value(index, searches[index], child, samplers)

    def value(self, index: int, s: Search, child: Node, samplers: list) -> None:
        """The child's cross-inspection value (a finished leaf's mixed with answer agreement), backed up."""
        values = self.step_values(samplers, s.prompt, child, s.budget)
        child.value = self._step_means[(index, child.id)] = sum(values) / len(values)
        if child.terminal:
            child.value = self.leaf_value(index, child, s.finished)
            s.finished.append(child)
        backup(child, child.value)

    def result(self, index: int, s: Search, models: int) -> StrategyResult:
        if not s.finished:
            return failed_result(s.problem, s.prompt, "mma found no finished solution within its budget")
        for leaf in s.finished:
            leaf.value = self.leaf_value(index, leaf, [other for other in s.finished if other is not leaf])
        return result_of(s.problem, s.prompt, s.finished, s.budget, s.root, {"strategy": "mma", "models": models})

    def descend(self, index: int, root: Node, pending: dict, models: int) -> Node | None:
        """From the root by UCT to a node with an untried action (or a terminal one)."""
        node = root
        while True:
            if (index, node.id) not in pending:
                pending[(index, node.id)] = self.actions(node, models)
            if node.terminal or pending[(index, node.id)]:
                return node
            child = uct_child(node, self.options.c)
            if child is None:  # every action here failed: a dead end, never chosen again
                node.terminal, node.error = True, node.error or "every action failed"
                return None
            node = child

    def actions(self, node: Node, models: int) -> list[tuple[int, str]]:
        writes = [(i, "write") for i in range(models)]
        if not self.options.rewrite or not node.steps:
            return writes
        return writes + [(i, "rewrite") for i in range(models) if f"m{i}" != node.authors[-1]]

    def step_values(self, samplers, prompt: str, node: Node, budget: Budget) -> list[float]:
        """Cross-inspection values of the node's steps (computed once per step text and prefix)."""
        values = []
        for index, (step, author) in enumerate(zip(node.steps, node.authors)):
            context = prompt + "".join(node.steps[:index])
            key = (context, step, author)
            if key not in self._values:
                judges = [s for i, s in enumerate(samplers) if f"m{i}" != author]
                self._values[key] = sum(math.exp(mean_logprob(s.generator(), context, step)) for s in judges) / len(judges)
                budget.reward_calls += len(judges)
            values.append(self._values[key])
        return values

    def leaf_value(self, index: int, leaf: Node, others: Sequence[Node]) -> float:
        """step_weight x mean step value + agreement_weight x share of `others` with the same final answer."""
        key = final_key(leaf)
        agreement = sum(key is not None and final_key(o) == key for o in others) / len(others) if others else 0.0
        return self.options.step_weight * self._step_means[(index, leaf.id)] + self.options.agreement_weight * agreement

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        from reasonloop.search.reward import best_rewarded

        return best_rewarded(rewards)

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)
