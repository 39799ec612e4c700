"""The built-in template library: well-formed, spread over steps and topics, exact, uncontaminated."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from fractions import Fraction
from functools import lru_cache

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.sources.templates import PERTURBATIONS
from reasonloop.sources.templates.builtin import LIBRARY_DIR, builtin_problems, builtin_templates
from reasonloop.sources.templates.evaluator import evaluate
from reasonloop.sources.templates.parser import split_sections, strip_dollars

SAMPLES = 50
TOPICS = {"arithmetic", "rates", "percentages", "fractions", "money", "time", "geometry"}
FILE_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.json$")
ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
ONE_OPERATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([-+*/])\s*(\d+(?:\.\d+)?)\s*$")
FINAL = re.compile(r"^####\s*\{(.+)\}\s*$", re.M)
NUMBER = re.compile(r"\d+(?:\.\d+)?")
OPERATIONS = {"+": Fraction.__add__, "-": Fraction.__sub__, "*": Fraction.__mul__, "/": Fraction.__truediv__}


@lru_cache(maxsize=1)
def library():
    return builtin_templates()


@lru_cache(maxsize=1)
def instances() -> dict[str, list]:
    return {template.id: [template.sample(seed=0, index=i) for i in range(SAMPLES)] for template in library()}


def raw(template) -> dict:
    return json.loads((LIBRARY_DIR / f"{template.id}.json").read_text())


def sections(template):
    return split_sections(raw(template)["question_annotated"], template=template.id)


def as_number(value):
    """A variable from Problem.meta['vars'] back as a number ('5/4' -> Fraction)."""
    return Fraction(value) if isinstance(value, str) and re.fullmatch(r"-?\d+/\d+", value) else value


def canonical(expression: str) -> str:
    """The expression with variables renamed v0, v1, ... in reading order: `a*b+c` == `x*y+z`."""
    names: dict[str, str] = {}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            return ast.Name(id=names.setdefault(node.id, f"v{len(names)}"), ctx=node.ctx)

    return ast.unparse(Rename().visit(ast.parse(strip_dollars(expression), mode="eval")))


def test_library_has_at_least_60_well_formed_templates():
    templates = library()
    paths = sorted(LIBRARY_DIR.glob("*.json"))
    assert len(templates) == len(paths) >= 60
    for template, path in zip(templates, paths):
        data = json.loads(path.read_text())
        assert FILE_NAME.match(path.name), path.name
        assert data["id"] == template.id == path.stem
        assert data["topic"] in TOPICS, path.name
        assert isinstance(data["steps"], int) and 1 <= data["steps"] <= 8 and template.steps == data["steps"]


def test_every_instance_satisfies_its_conditions_and_answer():
    for template in library():
        parts = sections(template)
        final = FINAL.search(raw(template)["answer_annotated"]).group(1)
        for problem in instances()[template.id]:
            env = {name: as_number(value) for name, value in problem.meta["vars"].items()}
            for condition in parts.conditions:
                assert evaluate(strip_dollars(condition.text), env) is True, (template.id, condition.text, env)
            answer = Fraction(evaluate(strip_dollars(parts.answer.text), env))
            assert Fraction(problem.answer) == answer > 0, (template.id, env)
            assert Fraction(evaluate(strip_dollars(final), env)) == answer, (template.id, final, env)
            assert answer.denominator == 1 or template.topic == "money", (template.id, problem.answer)
            assert "{" not in problem.question + problem.solution and "}" not in problem.question


def test_every_solution_step_is_one_exact_operation_and_steps_counts_them():
    for template in library():
        for problem in instances()[template.id]:
            annotations = ANNOTATION.findall(problem.solution)
            assert len(annotations) == template.steps, (template.id, problem.solution)
            for left, right in annotations:
                operation = ONE_OPERATION.match(left)
                assert operation, (template.id, left)
                a, op, b = operation.groups()
                assert OPERATIONS[op](Fraction(a), Fraction(b)) == Fraction(right), (template.id, left, right)
            assert Fraction(annotations[-1][1]) == Fraction(problem.answer), template.id


def test_defaults_are_a_valid_instance():
    for template in library():
        env = template.default_binding()
        for condition in sections(template).conditions:
            assert evaluate(strip_dollars(condition.text), env) is True, (template.id, condition.text)
        for step in template.plan:
            candidates = step.assignment.sequence(env)
            for name in step.assignment.targets:
                assert env[name] in candidates, (template.id, name, env[name])


def operands(question: str) -> list[Fraction]:
    return [Fraction(number) for number in NUMBER.findall(question)]


def test_step_and_topic_spread():
    templates = library()
    steps = Counter(template.steps for template in templates)
    assert set(steps) == set(range(1, 9)), steps
    assert sum(count for step, count in steps.items() if step <= 3) >= 25
    topics = Counter(template.topic for template in templates)
    assert set(topics) == TOPICS and min(topics.values()) >= 3, topics


def test_at_least_20_templates_with_4_plus_steps_and_3_digit_operands():
    hard = [template.id for template in library() if template.steps >= 4
            and all(max(operands(problem.question)) >= 100 for problem in instances()[template.id])]
    assert len(hard) >= 20, hard


def test_short_templates_mostly_use_1_and_2_digit_operands():
    short = [problem for template in library() if template.steps <= 3 for problem in instances()[template.id]]
    small = sum(max(operands(problem.question)) < 100 for problem in short)
    assert small / len(short) >= 0.9


def test_no_two_templates_share_an_answer_expression():
    by_expression: dict[str, list[str]] = {}
    for template in library():
        by_expression.setdefault(canonical(sections(template).answer.text), []).append(template.id)
    shared = {expression: ids for expression, ids in by_expression.items() if len(ids) > 1}
    assert not shared


def test_zero_13_gram_overlap_with_gsm8k_and_gsm_symbolic(shared_data):
    from reasonloop.evaluate.contamination import NgramIndex

    def reference():
        for split in ("train", "test"):
            with open(shared_data / "gsm8k" / f"{split}.jsonl", encoding="utf-8") as lines:
                for number, line in enumerate(lines):
                    yield f"gsm8k-{split}-{number}", json.loads(line)["question"]
        for path in sorted((shared_data / "gsm-symbolic" / "templates").glob("*/*.json")):
            yield f"gsm-symbolic-{path.parent.name}-{path.stem}", json.loads(path.read_text())["question"]

    index = NgramIndex.build(reference(), n=13)
    assert len(index.grams) > 100_000
    overlaps = {problem.source: index.matches(problem.question)
                for problems in instances().values() for problem in problems if index.matches(problem.question)}
    assert overlaps == {}


def test_builtin_problems_are_seeded_and_filtered():
    first = builtin_problems(2, seed=7)
    assert len(first) == 2 * len(library())
    assert [p.question for p in first] == [p.question for p in builtin_problems(2, seed=7)]
    assert [p.question for p in first] != [p.question for p in builtin_problems(2, seed=8)]
    short = builtin_problems(1, seed=0, max_steps=3)
    assert short and all(problem.meta["steps"] <= 3 for problem in short)
    long = builtin_problems(1, seed=0, min_steps=6)
    assert long and all(problem.meta["steps"] >= 6 for problem in long)
    assert len(short) + len(builtin_problems(1, seed=0, min_steps=4)) == len(library())


def test_500_distinct_short_problems_are_easy_to_draw():
    problems = builtin_problems(25, seed=123, max_steps=3)
    assert len({problem.question for problem in problems}) >= 500


def test_step_filter_that_matches_nothing_is_a_clear_error():
    with pytest.raises(ReasonloopError, match="min_steps=9"):
        builtin_templates(min_steps=9)


@pytest.mark.parametrize("kind", sorted(PERTURBATIONS))
def test_every_perturbation_applies_to_every_template(kind):
    base = builtin_problems(2, seed=3)
    perturbed = builtin_problems(2, seed=3, perturb=kind)
    assert len(perturbed) == len(base)
    for original, problem in zip(base, perturbed):
        assert problem.meta["perturbation"] == kind
        assert problem.meta["template"] == original.meta["template"]
        assert Fraction(problem.answer) > 0 and "{" not in problem.question
