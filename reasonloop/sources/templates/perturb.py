"""Perturbations: named transforms that turn a template instance into a variant of it.

Each is registered in `PERTURBATIONS` with `@perturbation("name")` and called as
`apply(template, seed, index) -> Problem`. The result carries `meta["perturbation"]`
(the name), `meta["base_id"]` (the id of the unperturbed instance `template.sample(seed,
index)`, so robustness can be measured pair by pair) and `meta["changed"]` (the
variables whose values differ).

- `resample`: new numbers, same names and entities (GSM-Symbolic's variation).
- `rename`:   new names and entities, same numbers (so the same answer).
- `scale`:    numbers drawn from ranges 10x larger, same names (digit expansion).
              Tried with every number scaled, then only the numbers no condition
              reads, then one number at a time (5,000 draws each) until one works.
- `noop`:     the same instance plus one irrelevant sentence before the question
              (GSM-NoOp style): same answer, a distractor with a number in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem
from reasonloop.sources.templates.errors import TemplateError
from reasonloop.sources.templates.helpers import make_rng
from reasonloop.sources.templates.pools import POOLS
from reasonloop.sources.templates.template import Assignment, Env, Template
from reasonloop.sources.templates.values import Labeled, is_number, unwrap

SCALE_FACTOR = 10
SCALE_TRIES = 5_000  # draws per choice of scaled variables before trying a smaller choice


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    apply: Callable[[Template, int, int], Problem]


PERTURBATIONS: dict[str, Perturbation] = {}


def perturbation(name: str) -> Callable[[Callable[[Template, int, int], Problem]], Callable]:
    def register(function: Callable[[Template, int, int], Problem]) -> Callable:
        description = (function.__doc__ or "").strip().split("\n")[0]
        PERTURBATIONS[name] = Perturbation(name, description, function)
        return function

    return register


def get_perturbation(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise ReasonloopError(f"unknown perturbation {name!r}; choose one of: {', '.join(sorted(PERTURBATIONS))}")
    return PERTURBATIONS[name]


# ------------------------------------------------------------------- shared pieces


def base_instance(template: Template, seed: int, index: int) -> tuple[Env, Problem]:
    env = template.draw(make_rng(template.id, seed, index))
    return env, template.to_problem(env, seed=seed, index=index)


def is_numeric(value: Any) -> bool:
    return is_number(unwrap(value)) or value.__class__ is Labeled


def logic_names(template: Template) -> set[str]:
    """Variables that conditions, the answer or other variables' ranges read."""
    names = set(template.answer.names)
    if template.final is not None:
        names |= template.final.names
    for step in template.plan:
        names |= step.assignment.candidates.names
        if step.assignment.count is not None:
            names |= step.assignment.count.names
        for check in step.checks:
            names |= check.expression.names
    for check in template.constant_checks:
        names |= check.expression.names
    return names


def variant(template: Template, base_env: Env, base: Problem, env: Env, *, seed: int, index: int,
            kind: str) -> Problem:
    changed = [name for name in template.variables if env.get(name) != base_env.get(name)]
    return template.to_problem(env, seed=seed, index=index, perturbation=kind,
                               meta={"base_id": base.id, "changed": changed})


# ------------------------------------------------------------------- the perturbations


@perturbation("resample")
def resample(template: Template, seed: int, index: int) -> Problem:
    """New numbers, same names and entities (GSM-Symbolic's numeric variation)."""
    base_env, base = base_instance(template, seed, index)
    fixed = {name: base_env[name] for name in template.variables if not is_numeric(base_env[name])}
    env = template.draw(make_rng(template.id, seed, index, "resample"), fixed=fixed)
    return variant(template, base_env, base, env, seed=seed, index=index, kind="resample")


@perturbation("rename")
def rename(template: Template, seed: int, index: int) -> Problem:
    """New names and entities, same numbers: the answer does not change."""
    base_env, base = base_instance(template, seed, index)
    logic = logic_names(template)
    free = {name for name in template.variables if not is_numeric(base_env[name]) and name not in logic}
    fixed = {name: base_env[name] for name in template.variables if name not in free}
    rng = make_rng(template.id, seed, index, "rename")
    env = base_env
    for _ in range(20):  # prefer a draw where the names really differ
        env = template.draw(rng, fixed=fixed)
        if all(env[name] != base_env[name] for name in free):
            break
    return variant(template, base_env, base, env, seed=seed, index=index, kind="rename")


@perturbation("scale")
def scale(template: Template, seed: int, index: int) -> Problem:
    """Numbers drawn from ranges 10x larger (digit expansion), same names."""
    base_env, base = base_instance(template, seed, index)
    fixed = {name: base_env[name] for name in template.variables if not is_numeric(base_env[name])}
    scalable = [name for name in template.numeric_variables if name not in fixed]
    constrained = {name for step in template.plan for check in step.checks for name in check.expression.names}
    rng = make_rng(template.id, seed, index, "scale")
    for chosen in (set(scalable), set(scalable) - constrained, *({name} for name in scalable)):
        if not chosen:
            continue
        try:
            env = template.draw(rng, fixed=fixed, transform=scaled_candidates(chosen), tries=SCALE_TRIES)
        except TemplateError:
            continue
        return variant(template, base_env, base, env, seed=seed, index=index, kind="scale")
    raise TemplateError("cannot scale: no numeric variable can grow 10x while the conditions hold",
                        template=template.name)


def scaled_candidates(names: set[str]) -> Callable[[Assignment, Any], Any]:
    def transform(assignment: Assignment, candidates: Any) -> Any:
        if not names.intersection(assignment.targets):
            return candidates
        if isinstance(candidates, range):
            return range(candidates.start * SCALE_FACTOR, candidates.stop * SCALE_FACTOR,
                         candidates.step * SCALE_FACTOR)
        if isinstance(candidates, (list, tuple)) and candidates and all(
                isinstance(item, int) and not isinstance(item, bool) for item in candidates):
            return [item * SCALE_FACTOR for item in candidates]
        return candidates

    return transform


DISTRACTORS = (
    "{count} of them were slightly smaller than average.",
    "{name} mentioned this to a friend {count} days later.",
    "The weather that day was sunny, with a temperature of {count} degrees.",
    "{name}'s cousin had done something similar {count} years earlier.",
    "A sign nearby said the place had been open for {count} years.",
    "It took {name} {count} minutes to get there by bus.",
    "{name} wrote all of this down in a notebook with {count} pages.",
    "The shop around the corner sells {count} different kinds of tea.",
    "{name} keeps a collection of {count} postcards at home.",
    "About {count} people walked past during this time.",
    "The street outside has {count} houses on each side.",
    "Prices at another store are {count}% higher, but that store was closed.",
)
SENTENCE_END = re.compile(r"[.!?](?=\s)")


@perturbation("noop")
def noop(template: Template, seed: int, index: int) -> Problem:
    """One irrelevant sentence with a number, inserted before the question (GSM-NoOp)."""
    base_env, base = base_instance(template, seed, index)
    rng = make_rng(template.id, seed, index, "noop")
    names = [value for value in base_env.values() if isinstance(value, str) and value in POOLS["names"]]
    name = names[0] if names else POOLS["names"][rng.below(len(POOLS["names"]))]
    sentence = DISTRACTORS[rng.below(len(DISTRACTORS))].format(name=name, count=2 + rng.below(19))
    question = insert_before_question(base.question, sentence)
    meta = {**base.meta, "perturbation": "noop", "base_id": base.id, "changed": [], "distractor": sentence}
    return Problem(question=question, answer=base.answer, solution=base.solution, source=base.source, meta=meta)


def insert_before_question(question: str, sentence: str) -> str:
    """Put `sentence` before the last sentence of the question (the actual question)."""
    body = question.rstrip()
    ends = [match.end() for match in SENTENCE_END.finditer(body) if match.end() < len(body) - 1]
    if not ends:
        return f"{sentence} {body}"
    cut = ends[-1]
    return f"{body[:cut]} {sentence}{body[cut:]}"
