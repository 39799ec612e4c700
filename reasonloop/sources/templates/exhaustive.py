"""Enumerating a template's finite space when rejection sampling cannot find a draw.

The variables that conditions read (and those their candidates depend on) are bound in
`#init` order; each condition is checked as soon as the last variable it reads is bound,
so a failing prefix prunes everything below it. An equality condition that is affine in
its step's variable yields its matching candidates directly. Variables no condition
depends on are left out and drawn freely afterwards: uniform over the enumerated
assignments times uniform free variables is uniform over all satisfying assignments.

The result, a `Space`, says whether the enumeration finished (then an empty solution
list *proves* the conditions unsatisfiable), how many assignments the space holds, and
the chance a single rejection draw succeeds (to decide whether rejection is hopeless).
"""

from __future__ import annotations

import ast
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from reasonloop.sources.templates.errors import EvalError
from reasonloop.sources.templates.helpers import HELPERS
from reasonloop.sources.templates.values import Labeled, as_labeled, is_number

NODE_BUDGET = 2_000_000  # bindings tried before a space counts as too large to enumerate
Env = dict[str, Any]
Bindings = tuple[tuple[str, Any], ...]


@dataclass
class Space:
    """What enumerating a template's constrained variables found."""

    solutions: list[Bindings] = field(default_factory=list)
    size: int = 1  # assignments in the space (product of domain sizes, each counted where first met)
    chance: float = 0.0  # probability that one rejection-sampling draw satisfies every condition
    complete: bool = True  # False: stopped at NODE_BUDGET (or a domain that cannot be listed)
    failures: Counter = field(default_factory=Counter)
    free_steps: tuple[int, ...] = ()  # plan positions drawn freely after a solution is picked
    reason: str = ""  # why the enumeration stopped early

    def bind(self, index: int, env: Env) -> None:
        env.update(self.solutions[index])


def uses_random(tree: ast.AST) -> bool:
    """Whether an expression calls a random helper (its values cannot be listed)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            helper = HELPERS.get(name)
            if helper is not None and helper.random:
                return True
    return False


def constrained_steps(plan: list, constant_checks: list) -> list[int]:
    """Plan positions whose variables some condition reads, directly or through a later domain."""
    needed: set[str] = set()
    for check in constant_checks:
        needed |= check.expression.names
    for step in plan:
        for check in step.checks:
            needed |= check.expression.names
    chosen: set[int] = set()
    for position in reversed(range(len(plan))):
        assignment = plan[position].assignment
        if needed & set(assignment.targets):
            chosen.add(position)
            needed |= assignment.candidates.names
            if assignment.count is not None:
                needed |= assignment.count.names
    return sorted(chosen)


def alternatives(assignment, candidates: Any, env: Env) -> list[tuple]:
    """Every value tuple the assignment can bind, each equally likely under sampling."""
    kind = assignment.kind
    if kind == "one":
        if isinstance(candidates, (list, tuple, range)) and not _is_pair(candidates):
            if len(candidates) > NODE_BUDGET:
                raise _TooLarge(f"{len(candidates):,} candidates in '{assignment.line.text}'")
            if isinstance(candidates, range):
                return [(item,) for item in candidates]
            return [(as_labeled(item),) for item in candidates]
        return [(as_labeled(candidates),)]
    items = list(candidates)
    count = assignment.count.run(env) if assignment.count is not None else len(assignment.targets)
    if kind == "many":
        if count > len(items) or math.perm(len(items), count) > NODE_BUDGET:
            raise _TooLarge(f"sample of {count} from {len(items)}")
        return [tuple(as_labeled(items[i]) for i in chosen) for chosen in itertools.permutations(range(len(items)),
                                                                                                   count)]
    return [tuple(as_labeled(item) for item in items[start:start + count])
            for start in range(len(items) - count + 1)]


def _is_pair(value: Any) -> bool:
    return value.__class__ is tuple and len(value) == 2 and isinstance(value[0], str) and is_number(value[1])


class _TooLarge(Exception):
    pass


@dataclass
class Explorer:
    """Depth-first enumeration over the constrained steps of a plan."""

    plan: list
    constant_checks: list
    holds: Callable[[Any, Env, Counter], bool]  # Template._holds: raises TemplateError on a broken condition
    solve_all: Callable[[Any, str, Env, Any], Any]  # matching candidates of an affine equality, or None
    fixed: Env | None = None
    transform: Callable | None = None
    leaf: Callable[[Env], bool] | None = None  # a last check on complete assignments (worked answer == #answer)
    leaf_names: frozenset[str] = frozenset()  # variables the leaf reads: used only if all are enumerated
    leaf_failure: str = "leaf check"  # what a failed leaf check counts as in Space.failures
    budget: int = NODE_BUDGET

    def run(self, base: Env) -> Space:
        positions = constrained_steps(self.plan, self.constant_checks)
        space = Space(free_steps=tuple(i for i in range(len(self.plan)) if i not in positions))
        for position in positions:
            assignment = self.plan[position].assignment
            if uses_random(assignment.candidates.tree):
                space.complete, space.reason = False, f"'{assignment.line.text}' draws at random"
                return space
        env = dict(base)
        if not all(self.holds(check, env, space.failures) for check in self.constant_checks):
            return space
        self._sizes: dict[int, int] = {}
        self._failures = space.failures
        self._nodes = 0
        targets = [self.plan[position].assignment.targets for position in positions]
        enumerated = {name for names in targets for name in names}
        self._leaf = self.leaf if self.leaf is not None and self.leaf_names <= enumerated else None
        try:
            self._walk(positions, 0, env, 1.0, space, targets)
        except _TooLarge as exc:
            space.complete = False
            space.reason = str(exc) or f"more than {self.budget:,} partial assignments"
        space.size = math.prod(self._sizes.values()) if self._sizes else 1
        return space

    def _walk(self, positions: list[int], depth: int, env: Env, weight: float, space: Space,
              targets: list[tuple[str, ...]]) -> None:
        if depth == len(positions):
            if self._leaf is not None and not self._leaf(env):
                space.failures[self.leaf_failure] += 1
                return
            space.solutions.append(tuple((name, env[name]) for names in targets for name in names))
            space.chance += weight
            return
        step = self.plan[positions[depth]]
        assignment = step.assignment
        options, total = self._options(step, env)
        self._sizes.setdefault(depth, total)
        if not options:
            return
        share = weight / total
        checks = [(check, check.expression.run, check.expression.source) for check in step.checks]
        failures = space.failures
        names = assignment.targets
        single = names[0] if len(names) == 1 else None
        self._nodes += len(options)
        if self._nodes > self.budget:
            raise _TooLarge()
        for values in options:
            if single is not None:
                env[single] = values[0]
            else:
                for name, value in zip(names, values):
                    env[name] = value
            for check, run, source in checks:  # the hot loop: Template._holds inlined, same outcome
                try:
                    result = run(env)
                except ZeroDivisionError:
                    result = False
                except (EvalError, ArithmeticError, TypeError, ValueError):
                    self.holds(check, env, failures)  # raises the located TemplateError
                    raise
                if result.__class__ is Labeled:
                    result = result.value
                if not result:
                    failures[source] += 1
                    break
            else:
                self._walk(positions, depth + 1, env, share, space, targets)
        for name in names:
            env.pop(name, None)

    def _options(self, step, env: Env) -> tuple[list[tuple], int]:
        """The step's candidate value tuples (an affine equality narrows them) and the domain's full size."""
        assignment = step.assignment
        if self.fixed is not None and all(name in self.fixed for name in assignment.targets):
            return [tuple(self.fixed[name] for name in assignment.targets)], 1
        try:
            candidates = assignment.sequence(env)
            if self.transform is not None:
                candidates = self.transform(assignment, candidates)
            if step.solver is not None and isinstance(candidates, (list, tuple, range)):
                matches = self.solve_all(step.solver, assignment.targets[0], env, candidates)
                if isinstance(matches, list):
                    total = max(len(candidates), 1)
                    self._failures[step.solver.expression.source] += total - len(matches)
                    return [(as_labeled(item),) for item in matches], total
            options = alternatives(assignment, candidates, env)
        except ZeroDivisionError:
            return [], 1
        except (EvalError, ArithmeticError, TypeError, ValueError):
            return [], 1  # the same draw fails under rejection sampling and is reported there
        total = max(len(options), 1)
        return options, total
