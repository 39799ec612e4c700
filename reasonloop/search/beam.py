"""`beam`: step-level beam search scored by a process reward model.

    reasonloop eval --strategy beam:reward_model=runs/prm,width=4,expand=4 --budget 2048 ...

Each round every beam is continued by `expand` sampled steps (one batched call); the PRM
scores every new partial solution (its steps' scores aggregated by `aggregate`) and the
best `width` unfinished ones go on. A child whose step ends the solution is a candidate;
the search stops with `width` candidates, at `max_steps` steps, or when the token budget
(default n x max_new_tokens) is spent. The highest-scored candidate is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from reasonloop.records import Problem, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.reranking import RewardOptions
from reasonloop.search.reward import RewardModel, aggregate, best_rewarded, load_reward_model
from reasonloop.search.stepwise import (Budget, Job, Node, expand_many, failed_result, prompt_of, result_of,
                                        step_settings, token_limit)


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
    score_many(model, [(prompt, node, budget) for node in nodes], how)


def score_many(model: RewardModel, jobs: Sequence[tuple[str, Node, Budget]], how: str) -> None:
    """`score_nodes` over nodes of many searches in one batched pass."""
    if not jobs:
        return
    scores = model.step_scores([prompt for prompt, _, _ in jobs], [node.steps for _, node, _ in jobs])
    for (_, node, budget), steps in zip(jobs, scores):
        node.value = aggregate(steps, "last" if model.kind == "orm" else how)
        budget.reward_calls += 1


@dataclass
class Search:
    """One problem's search state."""

    problem: Problem
    prompt: str
    budget: Budget
    root: Node = field(default_factory=lambda: Node(0))
    ids: list[int] = field(default_factory=lambda: [0])
    beams: list[Node] = field(default_factory=list)
    finished: list[Node] = field(default_factory=list)

    def job(self, node: Node) -> Job:
        return Job(self.problem, node, self.budget, self.ids)


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
        searches = [Search(p, prompt_of(sampler, p), Budget(token_limit(settings))) for p in problems]
        self.search(searches, sampler, settings, model)
        return [self.result(search) for search in searches]

    def search(self, searches: list[Search], sampler: Sampler, settings: SolveSettings, model: RewardModel) -> None:
        raise NotImplementedError

    def result(self, search: Search) -> StrategyResult:
        leaves = search.finished or search.beams
        if not leaves:
            return failed_result(search.problem, search.prompt, "every sampled step failed or was empty")
        return result_of(search.problem, search.prompt, leaves, search.budget, search.root, {"strategy": self.name})

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        return best_rewarded(rewards)

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)


@register_strategy("beam")
class Beam(StepSearch):
    """Step-level beam search: `width` partial solutions kept per step by PRM score."""

    def search(self, searches: list[Search], sampler: Sampler, settings: SolveSettings, model: RewardModel) -> None:
        options = self.options
        for search in searches:
            search.beams = [search.root]
        for _ in range(options.max_steps):
            active = [s for s in searches if s.beams and not s.budget.spent and len(s.finished) < options.width]
            if not active:
                break
            jobs = [s.job(beam) for s in active for beam in s.beams]
            drawn = expand_many(sampler, jobs, options.expand, settings, salt="beam")
            by_search: dict[int, list[Node]] = {}
            for job, children in zip(jobs, drawn):
                by_search.setdefault(id(job.budget), []).extend(c for c in children if not c.error)
            score_many(model, [(s.prompt, c, s.budget) for s in active for c in by_search.get(id(s.budget), [])],
                       options.aggregate)
            for s in active:
                live = by_search.get(id(s.budget), [])
                s.finished += [c for c in live if c.terminal]
                s.beams = sorted((c for c in live if not c.terminal), key=lambda c: -(c.value or 0.0))[: options.width]
