"""`beam`: step-level beam search scored by a process reward model.

    reasonloop eval --strategy beam:reward_model=runs/prm,width=4,expand=4 --budget 2048 ...

Each round every beam is continued by `expand` sampled steps (one batched call); the PRM
scores every new partial solution (its steps' scores aggregated by `aggregate`) and the
best `width` unfinished ones go on. A child whose step ends the solution is a candidate;
the search stops with `width` candidates, at `max_steps` steps, or when the token budget
(default n x max_new_tokens) is spent. The highest-scored candidate is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from reasonloop.records import Problem, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.reranking import RewardOptions
from reasonloop.search.reward import RewardModel, aggregate, best_rewarded, load_reward_model
from reasonloop.search.stepwise import (Budget, Node, expand, failed_result, prompt_of, result_of, step_settings,
                                        token_limit)


@dataclass(frozen=True)
class BeamOptions(RewardOptions):
    """width: beams kept per round; expand: steps sampled per beam; max_steps: rounds at most."""

    width: int = 4
    expand: int = 4
    max_steps: int = 12

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("width", "expand", "max_steps"):
            if getattr(self, name) < 1:
                raise StrategyError(f"{name} must be >= 1, got {getattr(self, name)}")


def score_nodes(model: RewardModel, prompt: str, nodes: Sequence[Node], how: str, budget: Budget) -> None:
    """Set each node's value: its steps' PRM scores aggregated by `how` (an ORM: the last step's)."""
    if not nodes:
        return
    scores = model.step_scores([prompt] * len(nodes), [node.steps for node in nodes])
    for node, steps in zip(nodes, scores):
        node.value = aggregate(steps, "last" if model.kind == "orm" else how)
    budget.reward_calls += len(nodes)


class StepSearch:
    """Shared by beam and mcts: reward-model options, prepare, per-problem run with failures recorded."""

    Options = BeamOptions
    needs_logprobs = False
    name = ""

    def __init__(self, options=None) -> None:
        self.options = options or self.Options()

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        if not self.options.reward_model:
            raise StrategyError(f"strategy {self.name} needs a reward model: --strategy {self.name}:reward_model=DIR")
        return step_settings(settings)

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        model = load_reward_model(self.options.reward_model, sampler.generator())
        return [self.search(problem, sampler, settings, model) for problem in problems]

    def search(self, problem: Problem, sampler: Sampler, settings: SolveSettings, model: RewardModel) -> StrategyResult:
        raise NotImplementedError

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        return best_rewarded(rewards)

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)


@register_strategy("beam")
class Beam(StepSearch):
    """Step-level beam search: `width` partial solutions kept per step by PRM score."""

    def search(self, problem: Problem, sampler: Sampler, settings: SolveSettings, model: RewardModel) -> StrategyResult:
        prompt, options = prompt_of(sampler, problem), self.options
        root, budget, ids = Node(0), Budget(token_limit(settings)), [0]
        beams, finished = [root], []
        for depth in range(options.max_steps):
            if not beams or budget.spent or len(finished) >= options.width:
                break
            children = expand(sampler, problem, beams, options.expand, settings, budget, ids, salt="beam")
            live = [child for child in children if not child.error]
            score_nodes(model, prompt, live, options.aggregate, budget)
            finished += [child for child in live if child.terminal]
            beams = sorted((c for c in live if not c.terminal), key=lambda c: -(c.value or 0.0))[: options.width]
        leaves = finished or beams
        if not leaves:
            return failed_result(problem, prompt, "every sampled step failed or was empty")
        return result_of(problem, prompt, leaves, budget, root, {"strategy": "beam"})
