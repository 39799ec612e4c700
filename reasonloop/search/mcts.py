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

from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.beam import Search, StepSearch, score_many
from reasonloop.search.reranking import RewardOptions
from reasonloop.search.reward import RewardModel
from reasonloop.search.steps import split_steps
from reasonloop.search.stepwise import Node, expand_many


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

    def search(self, searches: list[Search], sampler: Sampler, settings: SolveSettings, model: RewardModel) -> None:
        """Every problem's tree grows one iteration at a time, all expansions of an iteration in one call."""
        options = self.options
        for iteration in range(options.iterations):
            jobs = []
            for s in searches:
                leaf = None if s.budget.spent else select_leaf(s.root, options.c)
                if leaf is not None and leaf.terminal:
                    backup(leaf, leaf.value or 0.0)
                elif leaf is not None:
                    jobs.append(s.job(leaf))
            if not jobs and all(s.budget.spent for s in searches):
                break
            drawn = expand_many(sampler, jobs, options.expand, settings, salt=f"mcts{iteration}")
            owners = {id(s.budget): s for s in searches}
            pairs = [(owners[id(job.budget)], c) for job, children in zip(jobs, drawn) for c in children if not c.error]
            score_many(model, [(s.prompt, c, s.budget) for s, c in pairs], options.aggregate)
            if options.value == "rollout":
                self.rollouts(sampler, settings, model, [(s, c) for s, c in pairs if not c.terminal], iteration)
            for s, child in pairs:
                if child.terminal:
                    s.finished.append(child)
                backup(child, child.value or 0.0)

    def result(self, search: Search) -> StrategyResult:
        if not search.finished:
            best = sorted((n for n in walk(search.root) if n.steps and not n.error), key=lambda n: -(n.value or 0))[:1]
            search.finished = best
        return super().result(search)

    def rollouts(self, sampler, settings, model, pairs, iteration: int) -> None:
        """Complete each unfinished child once; the child's value becomes the finished text's reward."""
        if not pairs:
            return
        drawn = sampler.continue_texts([(s.problem, c.text) for s, c in pairs], 1, settings, salt=f"rollout{iteration}")
        done_pairs = []
        for (s, child), (attempt,) in zip(pairs, drawn):
            s.budget.tokens += attempt.tokens
            s.budget.calls += 1
            s.ids[0] += 1
            rest = split_steps(attempt.completion)
            done = Node(s.ids[0], [*child.steps, *rest], [*child.authors, *[""] * len(rest)], child, terminal=True,
                        action="rollout", error=attempt.error or (None if rest else "empty rollout"))
            child.children.append(done)
            if not done.error:
                done_pairs.append((s, done))
        score_many(model, [(s.prompt, done, s.budget) for s, done in done_pairs], self.options.aggregate)
        for s, done in done_pairs:
            done.parent.value = done.value
            s.finished.append(done)


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)
