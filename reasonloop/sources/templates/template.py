"""Compiled templates: parse once, then draw seeded instances as `Problem`s fast.

A `Template` holds every expression of its file compiled (see evaluator.py). Sampling
draws the `#init` variables in order with a generator seeded from (template id, seed,
index), checks each condition as soon as its variables are drawn (rejection sampling,
bounded), renders question and solution, and returns a `Problem`.

An equality condition such as `x + y + z + ans == total` is used to *solve* for the
variable drawn last in it when the condition is affine in that variable: the value is
computed and accepted only if that variable's own range or pool contains it (chosen
uniformly among the matching positions). This gives exactly the distribution plain
rejection sampling would give, without its ~1/|range| acceptance rate.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from reasonloop.records import Problem, content_hash
from reasonloop.sources.templates.errors import EvalError, TemplateError
from reasonloop.sources.templates.evaluator import RNG_KEY, Compiled, compile_expression
from reasonloop.sources.templates.exhaustive import NODE_BUDGET, Explorer, Space
from reasonloop.sources.templates.helpers import Rng, make_rng, sample, sample_sequential
from reasonloop.sources.templates.parser import QUESTION_FIELD, SOLUTION_FIELD, Line
from reasonloop.sources.templates.values import (
    Labeled, as_labeled, format_answer, format_calc, format_decimal, format_fraction, format_text, is_number,
    jsonable, normalize, parse_number_text, unwrap,
)

MAX_TRIES = 100_000  # draws per instance before the enumeration fallback
RARE_PROBE = 200  # failed draws after which the template's space is enumerated (once) to judge rejection
FINAL_MISMATCH = "#### line of answer_annotated differs from #answer"
MAX_FINAL_MISMATCHES = 200
ANSWER_KEY = " answer"  # where a draw keeps the #answer value it checked (not an identifier)
Env = dict[str, Any]


# ------------------------------------------------------------------- compiled pieces


_MISSING = object()


def memoized(expression: Compiled, env: Env, memo: dict[str, Any]) -> Any:
    """The expression's value for this instance; a solution repeats `{n1*p1}` several times."""
    value = memo.get(expression.key, _MISSING)
    if value is _MISSING:
        value = memo[expression.key] = expression.run(env)
    return value


@dataclass(frozen=True)
class Placeholder:
    expression: Compiled
    line: int
    as_fraction: bool  # `{Fraction(m, t)}` renders as 1/20, other numbers in decimal
    default: str | None = None  # `{n, Benny}`: the value the original question shows

    def render(self, env: Env, memo: dict[str, Any], calc: bool = False) -> str:
        name = self.expression.name
        value = env[name] if name is not None else memoized(self.expression, env, memo)
        if calc:
            return format_calc(value)
        if self.as_fraction and is_number(unwrap(value)):
            return format_fraction(unwrap(value))
        return format_text(value)


Renderer = Callable[[Env, dict], str]


def _as_fraction_text(value: Any) -> str:
    return format_fraction(unwrap(value)) if is_number(unwrap(value)) else format_text(value)


def renderer(part: str | Placeholder, calc: bool = False) -> str | Renderer:
    """A literal stays a string; a placeholder becomes a closure (the hot path of sampling)."""
    if isinstance(part, str):
        return part
    expression = part.expression
    write = format_calc if calc else _as_fraction_text if part.as_fraction else format_text
    name, run, key = expression.name, expression.run, expression.key
    if name is not None:
        def render_variable(env: Env, memo: dict) -> str:
            value = env[name]
            return str(value) if value.__class__ is int else write(value)
        return render_variable

    def render_expression(env: Env, memo: dict) -> str:
        value = memo.get(key, _MISSING)
        if value is _MISSING:
            value = memo[key] = run(env)
        return str(value) if value.__class__ is int else write(value)
    return render_expression


@dataclass(frozen=True)
class Text:
    """Literal strings and placeholders, rendered by joining."""

    parts: tuple[str | Placeholder, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plain", tuple(renderer(part) for part in self.parts))
        object.__setattr__(self, "_calc", tuple(renderer(part, calc=True) for part in self.parts))

    def render(self, env: Env, memo: dict[str, Any], calc: bool = False) -> str:
        parts = self._calc if calc else self._plain
        return "".join([part if part.__class__ is str else part(env, memo) for part in parts])

    @property
    def placeholders(self) -> list[Placeholder]:
        return [part for part in self.parts if isinstance(part, Placeholder)]


@dataclass(frozen=True)
class Annotation:
    """`<<lhs=rhs>>`: rendered as `<<lhs=value>>` with value recomputed from `lhs`; an annotation
    whose left side is not arithmetic (words, a placeholder missing its braces) is dropped."""

    lhs: Text  # literal parts already in calculator form: `÷` -> `/`, no commas, ends stripped
    value: Compiled | None

    def render(self, env: Env, memo: dict[str, Any]) -> str:
        if self.value is None:
            return ""  # not arithmetic: dropped, as GSM8K text without its calculator annotation
        try:
            result = unwrap(memoized(self.value, env, memo))
        except (EvalError, ArithmeticError, TypeError, ValueError):
            return ""
        if result.__class__ is int:
            return f"<<{self.lhs.render(env, memo, True)}={result}>>"
        if not is_number(result):
            return ""
        return f"<<{self.lhs.render(env, memo, True)}={format_decimal(result)}>>"


@dataclass(frozen=True)
class Assignment:
    """One `#init` line: `targets = draw(candidates)`."""

    targets: tuple[str, ...]
    numeric: tuple[bool, ...]
    kind: str  # "one": pick one of candidates; "many": sample k distinct; "sequential": k consecutive
    candidates: Compiled
    count: Compiled | None
    line: Line

    def sequence(self, env: Env) -> Any:
        return self.candidates.run(env)

    def draw(self, env: Env, rng: Rng) -> None:
        self.draw_from(self.candidates.run(env), env, rng)

    def draw_from(self, value: Any, env: Env, rng: Rng) -> None:
        if self.kind == "one":
            if isinstance(value, (list, tuple, range)) and not _is_pair(value):
                if not value:
                    raise EvalError("cannot draw from an empty list", self.candidates.source[:40])
                value = value[rng.below(len(value))]
            env[self.targets[0]] = as_labeled(value)
            return
        count = self.count.run(env) if self.count is not None else len(self.targets)
        chosen = sample(rng, value, count) if self.kind == "many" else sample_sequential(rng, value, count)
        if len(chosen) != len(self.targets):
            raise EvalError(f"{len(self.targets)} names but {len(chosen)} values", self.line.text[:40])
        for name, item in zip(self.targets, chosen):
            env[name] = item


def _is_pair(value: Any) -> bool:
    return value.__class__ is tuple and len(value) == 2 and isinstance(value[0], str) and is_number(value[1])


@dataclass(frozen=True)
class Condition:
    expression: Compiled
    line: Line
    solver_for: str | None = None  # the variable this equality condition solves for
    sides: tuple[Compiled, Compiled] | None = None  # left and right of `==` when it is a solver


@dataclass
class Step:
    assignment: Assignment
    checks: list[Condition] = field(default_factory=list)
    solver: Condition | None = None

    @property
    def fixed_choices(self) -> tuple[str, Any] | None:
        """(name, candidates) when this step just picks one of a constant list of plain values."""
        assignment = self.assignment
        if assignment.kind != "one" or len(assignment.targets) != 1 or not assignment.candidates.constant:
            return None
        values = assignment.candidates.run({})
        if isinstance(values, range) or (isinstance(values, (list, tuple)) and values and not _is_pair(values)
                                          and all(item.__class__ is not tuple for item in values)):
            return assignment.targets[0], values
        return None


# ------------------------------------------------------------------- the template


@dataclass
class Template:
    """A parsed, compiled template. `sample(seed, index)` gives a `Problem`."""

    id: str
    name: str
    steps: int
    question: Text
    solution: tuple[str | Placeholder | Annotation, ...]
    final: Compiled | None
    answer: Compiled
    answer_line: Line
    plan: list[Step]
    constant_checks: list[Condition]
    defaults: dict[str, str]
    source_path: Path | None = None
    topic: str | None = None
    original_answer: str | None = None
    data: dict = field(default_factory=dict, repr=False)
    max_tries: int = MAX_TRIES
    answer_from: str = "answer"  # or "solution": the worked solution's '####' value is the answer (build.py)
    max_enumerated: int = NODE_BUDGET  # partial assignments the fallback may try before "too large"
    _space: Space | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._quick_steps = [step.fixed_choices for step in self.plan]
        self._solution = tuple(part.render if isinstance(part, Annotation) else renderer(part)
                               for part in self.solution)

    # ---------------------------------------------------------------- public API

    @cached_property
    def variables(self) -> list[str]:
        return list(dict.fromkeys(name for step in self.plan for name in step.assignment.targets))

    @cached_property
    def numeric_variables(self) -> list[str]:
        return [name for step in self.plan for name, numeric in zip(step.assignment.targets, step.assignment.numeric)
                if numeric]

    def sample(self, seed: int, index: int) -> Problem:
        """The instance for (seed, index): same template, seed and index -> same problem anywhere."""
        env = self.draw(make_rng(self.id, seed, index))
        return self.to_problem(env, seed=seed, index=index)

    def draw(self, rng: Rng, *, fixed: Env | None = None,
             transform: Callable[[Assignment, Any], Any] | None = None, tries: int | None = None) -> Env:
        """Variables satisfying all conditions: rejection sampling (at most `max_tries` draws),
        then, for a plain draw, uniform choice among the enumerated satisfying assignments.

        `fixed` pins some variables to given values; `transform(assignment, candidates)`
        may replace a variable's candidates (used by perturbations). A template whose
        enumeration shows rejection is hopeless (see `rejection_is_hopeless`) switches to
        the enumeration after RARE_PROBE failed draws; every other draw is unchanged."""
        failures: Counter[str] = Counter()
        plain = tries is None and transform is None
        for attempt in range(tries or self.max_tries):
            env = self._try_draw(rng, fixed, transform, failures)
            if env is not None:
                return env
            if failures[FINAL_MISMATCH] >= MAX_FINAL_MISMATCHES:
                raise self._final_mismatch()
            if attempt + 1 == RARE_PROBE and plain and fixed is None:
                space = self.space()
                if rejection_is_hopeless(space, self.max_tries):
                    return self._pick(space, rng, fixed, failures)
        if not plain:
            raise self._unsatisfiable(failures)
        space = self.space() if fixed is None else self._explore(fixed)
        if not space.complete:
            raise self._too_large(space, failures)
        return self._pick(space, rng, fixed, failures)

    def space(self) -> Space:
        """The enumerated space of this template's constrained variables (computed once)."""
        if self._space is None:
            self._space = self._explore(None)
        return self._space

    def _explore(self, fixed: Env | None) -> Space:
        leaf_names = (self.final.names | self.answer.names) if self.final is not None else frozenset()
        explorer = Explorer(self.plan, self.constant_checks, self._holds, self._solve_all, fixed=fixed,
                            leaf=self._final_matches if self.final is not None else None, leaf_names=leaf_names,
                            leaf_failure=FINAL_MISMATCH, budget=self.max_enumerated)
        return explorer.run({RNG_KEY: make_rng(self.id, 0, 0, "enumerate")})

    def _pick(self, space: Space, rng: Rng, fixed: Env | None, failures: Counter[str]) -> Env:
        """A uniform choice among the satisfying assignments, the free variables drawn after it."""
        if not space.solutions and space.failures[FINAL_MISMATCH]:
            raise self._final_mismatch(f"all {space.failures[FINAL_MISMATCH]:,} assignments that satisfy the "
                                       "conditions disagree")
        if not space.solutions:
            worst = ", ".join(f"'{source}' failed {count:,}x" for source, count in space.failures.most_common(3))
            raise TemplateError(f"conditions unsatisfiable: none of the {space.size:,} assignments of the "
                                f"variables they read satisfies them ({worst})", template=self.name,
                                field=QUESTION_FIELD)
        for _ in range(MAX_FINAL_MISMATCHES):
            env: Env = {RNG_KEY: rng}
            space.bind(rng.below(len(space.solutions)), env)
            for position in space.free_steps:
                assignment = self.plan[position].assignment
                if fixed is not None and all(name in fixed for name in assignment.targets):
                    env.update({name: fixed[name] for name in assignment.targets})
                    continue
                try:
                    assignment.draw(env, rng)
                except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
                    raise self._located(exc, QUESTION_FIELD, assignment.line.line) from None
            if self.final is None or self._final_matches(env):
                return env
            failures[FINAL_MISMATCH] += 1
        raise self._final_mismatch()

    def _final_mismatch(self, evidence: str = f"{MAX_FINAL_MISMATCHES} draws that satisfied the conditions all "
                                              "disagreed") -> TemplateError:
        return TemplateError(
            f"the '####' line of answer_annotated never equals #answer ({evidence}): one of the two is wrong",
            template=self.name, field=SOLUTION_FIELD, token=self.final.source[:60])

    def to_problem(self, env: Env, *, seed: int, index: int, perturbation: str | None = None,
                   meta: dict | None = None) -> Problem:
        memo: dict[str, Any] = {}
        answer = env[ANSWER_KEY] if ANSWER_KEY in env else self._answer(env)
        extra = {"topic": self.topic} if self.topic else {}
        if self.answer_from != "answer":
            extra["answer_from"] = self.answer_from
        question = self._render(self.question, env, memo, QUESTION_FIELD)
        answer_text = format_answer(answer)
        # Every field is built here with its declared type (the builder refuses an empty
        # question), so pydantic's validation would only cost time: construct directly.
        return Problem.model_construct(
            id=content_hash(question, answer_text),
            question=question,
            answer=answer_text,
            solution=self.render_solution(env, memo),
            source=f"template:{self.id}",
            meta={"template": self.id, "steps": self.steps, "vars": self.jsonable_vars(env), "seed": seed,
                  "index": index, "perturbation": perturbation, **extra, **(meta or {})},
        )

    def render_solution(self, env: Env, memo: dict[str, Any] | None = None) -> str:
        memo = {} if memo is None else memo
        try:
            parts = [part if part.__class__ is str else part(env, memo) for part in self._solution]
        except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
            raise self._located(exc, SOLUTION_FIELD, None) from None
        return "".join(parts).rstrip()

    def jsonable_vars(self, env: Env) -> dict[str, Any]:
        return {name: jsonable(env[name]) for name in self.variables if name in env}

    def default_binding(self) -> Env:
        """Each variable bound to its default from the question text (number words parsed).

        A variable with no default is solved from an equality condition when it can be
        (`x + y + z + ans == total`); one the answer does not use is drawn at random.
        Raises TemplateError naming a variable the answer needs but that cannot be bound."""
        rng = make_rng(self.id, 0, 0, "defaults")
        env: Env = {RNG_KEY: rng}
        pending: list[tuple[Assignment, str]] = []
        for step in self.plan:
            for name in step.assignment.targets:
                if name in self.defaults:
                    env[name] = self._default_value(step.assignment, name, env)
                else:
                    pending.append((step.assignment, name))
        for assignment, name in pending:
            value = self._solve_default(name, env)
            if value is not None:
                env[name] = value
            elif name not in self.answer.names:
                scratch = dict(env)
                assignment.draw(scratch, rng)
                env[name] = scratch[name]
            else:
                raise TemplateError(f"variable {name!r} has no default in the question text and no equality "
                                    "condition defines it", template=self.name, field=QUESTION_FIELD,
                                    line=assignment.line.line, token=name)
        return env

    def _solve_default(self, name: str, env: Env) -> Any:
        conditions = self.constant_checks + [check for step in self.plan for check in step.checks]
        for condition in conditions:
            sides = equality_sides(condition)
            others = condition.expression.names - {name}
            if sides is None or name not in condition.expression.names or not others <= env.keys():
                continue
            value = self._solve(replace(condition, sides=sides), name, env, candidates=None)
            if value is not None and value is not _NOT_AFFINE:
                return normalize(value)
        return None

    def default_answer(self) -> str:
        """The `#answer` evaluated on the defaults (see `default_binding`)."""
        return format_answer(self._answer(self.default_binding()))

    # ---------------------------------------------------------------- drawing

    def _try_draw(self, rng: Rng, fixed: Env | None, transform, failures: Counter[str]) -> Env | None:
        env: Env = {RNG_KEY: rng}
        for check in self.constant_checks:
            if not self._holds(check, env, failures):
                return None
        for step, quick in zip(self.plan, self._quick_steps):
            if quick is not None and fixed is None and transform is None and step.solver is None:
                name, values = quick
                env[name] = values[rng.below(len(values))]
                for check in step.checks:
                    if not self._holds(check, env, failures):
                        return None
                continue
            assignment = step.assignment
            try:
                if fixed is not None and all(name in fixed for name in assignment.targets):
                    for name in assignment.targets:
                        env[name] = fixed[name]
                else:
                    candidates = assignment.sequence(env)
                    if transform is not None:
                        candidates = transform(assignment, candidates)
                    value = (self._solve(step.solver, assignment.targets[0], env, candidates)
                             if step.solver is not None else _NOT_AFFINE)
                    if value is None:
                        failures[step.solver.expression.source] += 1
                        return None
                    if value is _NOT_AFFINE:
                        assignment.draw_from(candidates, env, rng)
                    else:
                        env[assignment.targets[0]] = value
            except ZeroDivisionError:
                failures[f"division by zero in '{assignment.line.text}'"] += 1
                return None
            except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
                raise self._located(exc, QUESTION_FIELD, assignment.line.line) from None
            for check in step.checks:
                if not self._holds(check, env, failures):
                    return None
        if self.final is not None and not self._final_matches(env):
            failures[FINAL_MISMATCH] += 1
            return None
        return env

    def _holds(self, condition: Condition, env: Env, failures: Counter[str]) -> bool:
        try:
            result = unwrap(condition.expression.run(env))
        except ZeroDivisionError:
            result = False
        except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
            raise self._located(exc, QUESTION_FIELD, condition.line.line) from None
        if not result:
            failures[condition.expression.source] += 1
        return bool(result)

    def _solve(self, condition: Condition, name: str, env: Env, candidates: Any) -> Any:
        """Solve an affine equality for `name`; the matching candidate, None if none, _NOT_AFFINE to fall back."""
        matches = self._solve_all(condition, name, env, candidates)
        if matches is _NOT_AFFINE or candidates is None:
            return matches
        if not matches:
            return None
        rng = env[RNG_KEY]
        return as_labeled(matches[rng.below(len(matches))])

    def _solve_all(self, condition: Condition, name: str, env: Env, candidates: Any) -> Any:
        """Every candidate satisfying an affine equality in `name` (the value itself when `candidates`
        is None), or _NOT_AFFINE."""
        left, right = condition.sides
        probes = _probe_points(candidates)
        if len(probes) < 2:
            return _NOT_AFFINE

        def gap(value: Any) -> Any:
            env[name] = value
            return unwrap(left(env)) - unwrap(right(env))

        try:
            points = [(unwrap(point), gap(point)) for point in probes]
        except (EvalError, ArithmeticError, TypeError, ValueError):
            env.pop(name, None)
            return _NOT_AFFINE
        finally:
            env.pop(name, None)
        (x0, y0), (x1, y1) = points[0], points[1]
        slope = (y1 - y0) / (x1 - x0)
        if slope == 0 or any(y != y0 + slope * (x - x0) for x, y in points[2:]):
            return _NOT_AFFINE
        target = x0 - y0 / slope
        if candidates is None:  # binding defaults: any value will do
            return target
        return _matching(candidates, target)

    def _final_matches(self, env: Env) -> bool:
        answer = env[ANSWER_KEY] = self._answer(env)
        try:
            return unwrap(self.final.run(env)) == unwrap(answer)
        except (EvalError, ArithmeticError, TypeError, ValueError):
            return False

    def _answer(self, env: Env) -> Any:
        try:
            value = self.answer.run(env)
        except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
            raise self._located(exc, QUESTION_FIELD, self.answer_line.line) from None
        if not is_number(unwrap(value)):
            raise TemplateError(f"#answer must be a number, got {format_text(value)!r}", template=self.name,
                                field=QUESTION_FIELD, line=self.answer_line.line, token=self.answer.source[:40])
        return value

    def _render(self, text: Text, env: Env, memo: dict[str, Any], field_name: str) -> str:
        try:
            return text.render(env, memo)
        except (EvalError, ArithmeticError, TypeError, ValueError) as exc:
            raise self._located(exc, field_name, None) from None

    def _default_value(self, assignment: Assignment, name: str, env: Env) -> Any:
        text = self.defaults[name]
        try:
            candidates = assignment.sequence(env)
        except (EvalError, ArithmeticError, TypeError, ValueError, KeyError):
            candidates = ()
        declared = next(numeric for target, numeric in zip(assignment.targets, assignment.numeric) if target == name)
        if not declared and not _numeric_candidates(candidates):
            return text
        if isinstance(candidates, (list, tuple)):
            for candidate in candidates:
                if candidate.__class__ is Labeled and candidate.text.strip().lower() == text.strip().lower():
                    return candidate
                if _is_pair(candidate) and candidate[0].strip().lower() == text.strip().lower():
                    return as_labeled(candidate)
        number = parse_number_text(text)
        if number is None:
            raise TemplateError(f"default {text!r} of numeric variable {name!r} is not a number",
                                template=self.name, field=QUESTION_FIELD, line=assignment.line.line, token=text)
        return number if text.strip() == format_text(number) else Labeled(text, number)

    def _unsatisfiable(self, failures: Counter[str]) -> TemplateError:
        worst = ", ".join(f"'{source}' failed {count}x" for source, count in failures.most_common(3))
        return TemplateError(f"conditions unsatisfiable or too rare: no draw out of {sum(failures.values()):,} "
                             f"satisfied them ({worst})", template=self.name, field=QUESTION_FIELD)

    def _too_large(self, space: Space, failures: Counter[str]) -> TemplateError:
        worst = ", ".join(f"'{source}' failed {count:,}x" for source, count in (failures + space.failures)
                          .most_common(3))
        return TemplateError(f"conditions too rare: no draw out of {sum(failures.values()):,} satisfied them, and "
                             f"the space of {space.size:,} assignments is too large to enumerate ({space.reason}); "
                             f"failing most: {worst}", template=self.name, field=QUESTION_FIELD)

    def _located(self, exc: Exception, field_name: str, line: int | None) -> TemplateError:
        token = getattr(exc, "token", None)
        message = str(exc) if isinstance(exc, EvalError) else f"{type(exc).__name__}: {exc}"
        return TemplateError(message, template=self.name, field=field_name, line=line, token=token)


_NOT_AFFINE = object()
HOPELESS_EXPECTED_SUCCESSES = 5  # below this many expected successes in max_tries, rejection is hopeless


def rejection_is_hopeless(space: Space, max_tries: int) -> bool:
    """Whether the enumeration is complete and rejection would expect under 5 successes in
    `max_tries` draws (it then fails an instance with probability above e^-5, 0.7%): such a
    template did not reliably generate before the fallback, so its draws may change."""
    return space.complete and space.chance * max_tries < HOPELESS_EXPECTED_SUCCESSES


def _numeric_candidates(candidates: Any) -> bool:
    """Whether a variable's candidates are numbers (`n1, n2 = sample(list(range(3, 19)), 2)` has no `$`)."""
    if not isinstance(candidates, (list, tuple, range)) or not candidates:
        return is_number(unwrap(candidates))
    first = as_labeled(candidates[0])
    return is_number(unwrap(first))


def equality_sides(condition: Condition) -> tuple[Compiled, Compiled] | None:
    """Left and right of a `a == b` condition, compiled; None for other conditions."""
    if condition.sides is not None:
        return condition.sides
    tree = condition.expression.tree
    if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq)):
        return None
    variables = list(condition.expression.names)
    return (compile_expression(ast.unparse(tree.left), variables=variables),
            compile_expression(ast.unparse(tree.comparators[0]), variables=variables))


def _probe_points(candidates: Any) -> list[Any]:
    """Up to three candidates with distinct numeric values to test whether a condition is affine."""
    if candidates is None:
        return [0, 1, 2]
    if not isinstance(candidates, (list, tuple, range)) or _is_pair(candidates):
        return []
    seen: list[Any] = []
    values: list[Any] = []
    for item in (candidates[0], candidates[-1], candidates[len(candidates) // 2]) if candidates else ():
        value = unwrap(as_labeled(item))
        if is_number(value) and value not in values:
            values.append(value)
            seen.append(as_labeled(item))
    return seen


def _matching(candidates: Any, target: Any) -> list[Any]:
    if isinstance(candidates, range):
        return [int(target)] if target == int(target) and int(target) in candidates else []
    return [item for item in candidates
            if (item.value if item.__class__ is Labeled else unwrap(as_labeled(item)) if item.__class__ is tuple
                else item) == target]
