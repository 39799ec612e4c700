"""What step-level search (beam, MCTS, MMA) shares: nodes, one-step expansion, leaves as candidates.

An action writes one step: the sampler continues the node's text up to a line break
(`CachedSampler.continue_texts` with stop "\\n") and the step splitter keeps the first
step of what came back (`steps.first_step`). A step is terminal when it holds a final
answer (`#### N`, `\\boxed{}`, "the answer is") or ends the text (end of sequence or the
token limit). An empty continuation is a dead end: recorded in the tree with its error,
never raised, so one failing candidate never stops the search.

Compute is counted as generated tokens (every continuation, including the part of a line
after its first step) and generator calls (one per sampled continuation); reward-model
and scoring calls go to `StrategyResult.reward_calls`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from reasonloop.records import Attempt, Problem
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult
from reasonloop.search.steps import first_step

STEP_STOP = ("\n",)
DEFAULT_TEMPERATURE = 0.7


@dataclass
class Node:
    """A prefix of a solution: its steps, who wrote each (MMA), and search statistics."""

    id: int
    steps: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    terminal: bool = False
    error: str | None = None
    value: float | None = None  # the node's own value (PRM step score, cross-inspection)
    total: float = 0.0  # MCTS: sum of backed-up values
    visits: int = 0
    action: str = ""

    @property
    def text(self) -> str:
        return "".join(self.steps)

    def tree(self) -> dict[str, Any]:
        """The node as the report's trace viewer shows it (children nested; other keys as its label)."""
        row: dict[str, Any] = {"id": self.id, "step": self.steps[-1] if self.steps else "(root)"}
        for key, value in (("action", self.action), ("value", self.value), ("visits", self.visits or None),
                           ("terminal", self.terminal or None), ("error", self.error)):
            if value:
                row[key] = round(value, 4) if isinstance(value, float) else value
        if self.children:
            row["children"] = [child.tree() for child in self.children]
        return row


@dataclass
class Budget:
    """Tokens and calls spent on one problem, against its limit."""

    limit: int
    tokens: int = 0
    calls: int = 0
    reward_calls: int = 0

    @property
    def spent(self) -> bool:
        return self.tokens >= self.limit


def token_limit(settings: SolveSettings) -> int:
    return settings.budget if settings.budget is not None else settings.n * settings.max_new_tokens


def step_settings(settings: SolveSettings) -> SolveSettings:
    """Step search samples: temperature 0 would give every child the same step."""
    from dataclasses import replace

    if settings.temperature == 0:
        return replace(settings, temperature=DEFAULT_TEMPERATURE)
    return settings


def has_final_answer(text: str) -> bool:
    from reasonloop.verify.extract import extract_answer

    return extract_answer(text) is not None


def expand(sampler: Sampler, problem: Problem, parents: Sequence[Node], k: int, settings: SolveSettings,
           budget: Budget, next_id: list[int], *, salt: str = "", author: str = "") -> list[Node]:
    """`k` one-step children of each parent (one batched call); children are attached to their parents."""
    jobs = [Job(problem, parent, budget, next_id) for parent in parents]
    return [child for children in expand_many(sampler, jobs, k, settings, salt=salt, author=author) for child in children]


@dataclass
class Job:
    """One node to expand, with the problem, budget and id counter of its search."""

    problem: Problem
    parent: Node
    budget: Budget
    next_id: list[int]
    base: Node | None = None  # MMA's rewrite: continue this node's text, attach the child to `parent`


def expand_many(sampler: Sampler, jobs: Sequence[Job], k: int, settings: SolveSettings, *, salt: str = "",
                author: str = "") -> list[list[Node]]:
    """`k` one-step children of each job's node, for many searches (problems) in one batched call."""
    if not jobs:
        return []
    drawn = sampler.continue_texts([(job.problem, (job.base or job.parent).text) for job in jobs], k, settings,
                                   stop=STEP_STOP, salt=salt)
    out = []
    for job, attempts in zip(jobs, drawn):
        children = []
        for attempt in attempts:
            job.budget.tokens += attempt.tokens
            job.budget.calls += 1
            child = child_of(job.base or job.parent, attempt, job.next_id, author)
            child.parent = job.parent
            job.parent.children.append(child)
            children.append(child)
        out.append(children)
    return out


def child_of(parent: Node, attempt: Attempt, next_id: list[int], author: str) -> Node:
    next_id[0] += 1
    step = first_step(attempt.completion)
    node = Node(next_id[0], [*parent.steps, step], [*parent.authors, author], parent, action=author or "write")
    if attempt.error or not step:
        node.steps.pop()
        node.authors.pop()
        node.terminal, node.error = True, attempt.error or "the model wrote an empty step"
        return node
    ended = step == attempt.completion and not step.endswith(STEP_STOP)
    node.terminal = ended or has_final_answer(step)
    return node


def candidate(problem: Problem, prompt: str, node: Node, index: int, tokens: int, model: str = "") -> Attempt:
    """A leaf as a graded candidate: its whole text, its steps and the reward it was chosen by."""
    return Attempt(problem_id=problem.id, prompt=prompt, completion=node.text, model=model, sample_index=index,
                   tokens=tokens, steps=list(node.steps), reward=node.value, error=node.error,
                   finish_reason="error" if node.error else "stop")


def result_of(problem: Problem, prompt: str, leaves: Sequence[Node], budget: Budget, root: Node,
              tree_extra: dict[str, Any] | None = None) -> StrategyResult:
    """Leaves become candidates (tokens spread evenly: the tree's total is in the result)."""
    share = budget.tokens // max(len(leaves), 1)
    candidates = [candidate(problem, prompt, leaf, i, share) for i, leaf in enumerate(leaves)]
    tree = {**root.tree(), **(tree_extra or {}), "tokens": budget.tokens, "calls": budget.calls,
            "reward_calls": budget.reward_calls}
    return StrategyResult(candidates, budget.tokens, budget.calls, budget.reward_calls, tree)


def failed_result(problem: Problem, prompt: str, error: str) -> StrategyResult:
    """A problem whose search failed before any leaf: one `error` candidate, the batch goes on."""
    attempt = Attempt(problem_id=problem.id, prompt=prompt, completion="", error=error, finish_reason="error")
    return StrategyResult([attempt], 0, 0, 0, {"id": 0, "step": "(root)", "error": error})


def prompt_of(sampler: Sampler, problem: Problem) -> str:
    fmt = getattr(sampler, "prompt_format", None)
    if fmt is None:
        raise StrategyError("step-level search needs a sampler with a prompt format")
    return fmt.render_prompt(problem.question)
