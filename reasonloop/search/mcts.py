"""`mcts`: step-level Monte Carlo tree search (UCT) with PRM or rollout values.

    reasonloop eval --strategy mcts:reward_model=runs/prm,value=prm,iterations=16 --budget 2048 ...

Each iteration walks from the root by UCT (mean value + c * sqrt(ln N_parent / N_child);
unvisited children first) to a node without children, samples `expand` next steps from it,
and values each child: `value=prm` — the reward model's aggregate over the child's steps;
`value=rollout` — one completion sampled from the child to the end, valued by the reward
model on the finished text (the rollout is kept as a candidate). Values are backed up as
running means. It stops after `iterations` or when the token budget is spent. Candidates
are the finished solutions (terminal nodes and rollouts), the highest-valued one is chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reasonloop.records import Problem
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.beam import StepSearch, score_nodes
from reasonloop.search.reranking import RewardOptions
from reasonloop.search.reward import RewardModel
from reasonloop.search.steps import split_steps
from reasonloop.search.stepwise import (Budget, Node, expand, failed_result, prompt_of, result_of,
                                        token_limit)


@dataclass(frozen=True)
class MCTSOptions(RewardOptions):
    """value: prm or rollout; expand: children per expansion; iterations: at most; c: UCT exploration."""

    value: str = "prm"
    expand: int = 2
    iterations: int = 16
    c: float = 1.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.value not in ("prm", "rollout"):
            raise StrategyError(f"value must be prm or rollout, got {self.value!r}")
        if self.expand < 1 or self.iterations < 1:
            raise StrategyError(f"expand and iterations must be >= 1, got {self.expand} and {self.iterations}")


def uct_child(node: Node, c: float) -> Node | None:
    """The child to descend to (None when every child failed)."""
    usable = [child for child in node.children if not child.error]
    if not usable:
        return None
    log_visits = math.log(max(node.visits, 1))

    def bound(child: Node) -> float:
        if child.visits == 0:
            return math.inf
        return child.total / child.visits + c * math.sqrt(log_visits / child.visits)

    return max(usable, key=bound)


def backup(node: Node | None, value: float) -> None:
    while node is not None:
        node.visits += 1
        node.total += value
        node = node.parent


def select_leaf(root: Node, c: float) -> Node | None:
    node = root
    while node.children and not node.terminal:
        child = uct_child(node, c)
        if child is None:
            node.terminal, node.error = True, node.error or "every child failed"
            return None
        node = child
    return node


@register_strategy("mcts")
class MCTS(StepSearch):
    """Step-level UCT search; node values from a PRM or from rollouts scored by the reward model."""

    Options = MCTSOptions

    def search(self, problem: Problem, sampler: Sampler, settings: SolveSettings, model: RewardModel) -> StrategyResult:
        prompt, options = prompt_of(sampler, problem), self.options
        root, budget, ids = Node(0), Budget(token_limit(settings)), [0]
        finished: list[Node] = []
        for iteration in range(options.iterations):
            if budget.spent:
                break
            leaf = select_leaf(root, options.c)
            if leaf is None:
                continue
            if leaf.terminal:
                backup(leaf, leaf.value or 0.0)
                continue
            children = [c for c in expand(sampler, problem, [leaf], options.expand, settings, budget, ids,
                                          salt=f"mcts{leaf.id}") if not c.error]
            score_nodes(model, prompt, children, options.aggregate, budget)
            if options.value == "rollout":
                finished += self.rollouts(problem, sampler, settings, model, prompt, children, budget, ids)
            finished += [c for c in children if c.terminal]
            for child in children:
                backup(child, child.value or 0.0)
        leaves = finished or sorted((n for n in walk(root) if n.steps and not n.error), key=lambda n: -(n.value or 0))[:1]
        if not leaves:
            return failed_result(problem, prompt, "every sampled step failed or was empty")
        return result_of(problem, prompt, leaves, budget, root, {"strategy": "mcts", "value_from": options.value})

    def rollouts(self, problem, sampler, settings, model, prompt, children, budget, ids) -> list[Node]:
        """Complete each unfinished child; its value becomes the finished text's reward."""
        open_children = [c for c in children if not c.terminal]
        if not open_children:
            return []
        drawn = sampler.continue_texts([(problem, c.text) for c in open_children], 1, settings, salt="rollout")
        rolled = []
        for child, (attempt,) in zip(open_children, drawn):
            budget.tokens += attempt.tokens
            budget.calls += 1
            ids[0] += 1
            rest = split_steps(attempt.completion)
            done = Node(ids[0], [*child.steps, *rest], [*child.authors, *[""] * len(rest)], child, terminal=True,
                        action="rollout", error=attempt.error or (None if rest else "empty rollout"))
            child.children.append(done)
            rolled.append(done)
        live = [n for n in rolled if not n.error]
        score_nodes(model, prompt, live, self.options.aggregate, budget)
        for node in live:
            node.parent.value = node.value
        return live


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)
