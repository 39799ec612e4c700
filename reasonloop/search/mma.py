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
from reasonloop.search.stepwise import (STEP_STOP, Budget, Node, child_of, failed_result, prompt_of, result_of,
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
        return [self.search(problem, samplers, settings) for problem in problems]

    @staticmethod
    def other(sampler: Any, path: str) -> Any:
        from reasonloop.solve import GeneratorSpec

        generator = GeneratorSpec(path, "hf").load()
        return sampler.for_generator(generator, generator.fingerprint())

    def search(self, problem: Problem, samplers: list, settings: SolveSettings) -> StrategyResult:
        prompt, options = prompt_of(samplers[0], problem), self.options
        root, budget, ids = Node(0), Budget(token_limit(settings)), [0]
        self._values: dict[tuple[str, str, str], float] = {}  # cross-inspection value per (context, step, author)
        self._step_means: dict[int, float] = {}
        pending: dict[int, list[tuple[int, str]]] = {}
        finished: list[Node] = []
        for _ in range(options.iterations):
            if budget.spent:
                break
            node = self.descend(root, pending, len(samplers))
            if node is None:
                break
            if node.terminal:
                backup(node, node.value or 0.0)
                continue
            model, kind = pending[node.id].pop(0)
            child = self.act(problem, samplers, settings, prompt, node, model, kind, budget, ids)
            if child.error:
                continue
            if child.terminal:
                child.value = self.leaf_value(child, finished)
                finished.append(child)
            backup(child, child.value or 0.0)
        if not finished:
            return failed_result(problem, prompt, "mma found no finished solution within its budget")
        for leaf in finished:
            leaf.value = self.leaf_value(leaf, [other for other in finished if other is not leaf])
        return result_of(problem, prompt, finished, budget, root, {"strategy": "mma", "models": len(samplers)})

    def descend(self, root: Node, pending: dict, models: int) -> Node | None:
        """From the root by UCT to a node with an untried action (or a terminal one)."""
        node = root
        while True:
            if node.id not in pending:
                pending[node.id] = self.actions(node, models)
            if node.terminal or pending[node.id]:
                return node
            child = uct_child(node, self.options.c)
            if child is None:
                return None if node is root else node
            node = child

    def actions(self, node: Node, models: int) -> list[tuple[int, str]]:
        writes = [(i, "write") for i in range(models)]
        if not self.options.rewrite or not node.steps:
            return writes
        return writes + [(i, "rewrite") for i in range(models) if f"m{i}" != node.authors[-1]]

    def act(self, problem, samplers, settings, prompt, node: Node, model: int, kind: str, budget: Budget, ids) -> Node:
        base = node if kind == "write" else Node(-1, node.steps[:-1], node.authors[:-1])
        (attempt,), = samplers[model].continue_texts([(problem, base.text)], 1, settings, stop=STEP_STOP,
                                                     salt=f"mma{node.id}{kind}")
        budget.tokens += attempt.tokens
        budget.calls += 1
        child = child_of(base, attempt, ids, f"m{model}")
        child.parent, child.action = node, f"m{model}:{kind}"
        node.children.append(child)
        if not child.error:
            values = self.step_values(samplers, prompt, child, budget)
            child.value = self._step_means[child.id] = sum(values) / len(values)
        return child

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

    def leaf_value(self, leaf: Node, others: Sequence[Node]) -> float:
        """step_weight x mean step value + agreement_weight x share of `others` with the same final answer."""
        key = final_key(leaf)
        agreement = sum(key is not None and final_key(o) == key for o in others) / len(others) if others else 0.0
        return self.options.step_weight * self._step_means[leaf.id] + self.options.agreement_weight * agreement

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        from reasonloop.search.reward import best_rewarded

        return best_rewarded(rewards)

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)
