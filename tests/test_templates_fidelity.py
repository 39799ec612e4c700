"""Fidelity of the template engine to data nobody here wrote: GSM-Symbolic's p2 templates
with rare conditions, pools as the published instances show them, and byte-identical
output for every template that generated before the enumeration fallback existed."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from reasonloop.sources.templates import TemplateError, load_template, parse_template
from reasonloop.sources.templates.builtin import LIBRARY_DIR
from reasonloop.sources.templates.evaluator import evaluate
from reasonloop.sources.templates.helpers import make_rng
from reasonloop.sources.templates.pools import POOLS
from reasonloop.sources.templates.template import rejection_is_hopeless
from reasonloop.sources.templates.values import Labeled, as_labeled, format_answer, parse_number_text, unwrap

PINNED = Path(__file__).parent / "data" / "template_hashes.json"
PINNED_SEED, PINNED_INDICES = 7, range(3)


def instance_hash(template) -> str:
    """sha256 over the full records of a few instances: any change in a draw shows."""
    digest = hashlib.sha256()
    for index in PINNED_INDICES:
        problem = template.sample(PINNED_SEED, index)
        digest.update(json.dumps(problem.model_dump(), sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def pinned_files(shared_data: Path) -> dict[str, Path]:
    shared = sorted((shared_data / "gsm-symbolic" / "templates").glob("*/*.json"))
    files = {f"{path.parent.name}/{path.stem}": path for path in shared}
    files.update({f"builtin/{path.stem}": path for path in sorted(LIBRARY_DIR.glob("*.json"))})
    return files


def current_hashes(shared_data: Path) -> dict[str, str]:
    hashes = {}
    for name, path in pinned_files(shared_data).items():
        try:
            hashes[name] = instance_hash(load_template(path, check=False))
        except TemplateError:
            hashes[name] = "refused"
    return hashes


def assert_pinned(got: dict[str, str]) -> None:
    pinned = json.loads(PINNED.read_text())
    changed = {name: (pinned[name], value) for name, value in got.items()
               if pinned[name] != "refused" and pinned[name] != value}
    assert not changed, f"instances changed for {len(changed)} template(s): {changed}"


def test_builtin_library_instances_are_byte_identical_to_the_pinned_ones(shared_data):
    got = {name: instance_hash(load_template(path, check=False))
           for name, path in pinned_files(shared_data).items() if name.startswith("builtin/")}
    assert len(got) == 78
    assert_pinned(got)


@pytest.mark.slow  # ~30 s: a few GSM-Symbolic files need thousands of draws per instance
def test_instances_are_byte_identical_to_the_pinned_ones(shared_data):
    got = current_hashes(shared_data)
    assert len([value for value in got.values() if value != "refused"]) == 276  # 280 files, 4 refused
    assert_pinned(got)


if __name__ == "__main__":  # regenerate: python tests/test_templates_fidelity.py
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    PINNED.write_text(json.dumps(current_hashes(root), indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------ rare but satisfiable


def p2_sample(shared_data: Path, name: str):
    return load_template(shared_data / "gsm-symbolic" / "templates" / "p2-sample" / f"{name}.json", check=False)


def assert_valid(template, problem) -> None:
    env = template.draw(make_rng(template.id, problem.meta["seed"], problem.meta["index"]))
    for step in template.plan:
        for condition in step.checks:
            assert unwrap(condition.expression.run(env)), condition.expression.source
    assert problem.answer == format_answer(template.answer.run(env))
    assert Fraction(problem.answer) == Fraction(format_answer(template.final.run(env)))


def test_p2_template_rejection_cannot_sample_generates_fifty_valid_instances(shared_data):
    template = p2_sample(shared_data, "0010")
    space = template.space()
    assert space.complete and (len(space.solutions), space.size) == (923, 19_901_700)
    assert rejection_is_hopeless(space, template.max_tries)  # ~4.6 expected successes in 100,000 draws
    problems = [template.sample(0, index) for index in range(50)]
    assert len({problem.question for problem in problems}) == 50
    for problem in problems:
        assert_valid(template, problem)
    assert problems[0].answer == "27" and "you must pay ₹0.9 for each minute" in problems[0].question


def test_p2_template_whose_answer_contradicts_its_worked_solution_is_refused_with_the_proof(shared_data):
    # #answer has `((n1 + n2) * (1+frac) - 1) * 15 * ...` where the worked solution (and the
    # question) have `((n1 + n2) * (1+frac)) * 15 * ...`: no assignment makes them agree.
    with pytest.raises(TemplateError, match=r"never equals #answer \(all [\d,]+ assignments that satisfy"):
        p2_sample(shared_data, "0026").sample(0, 0)


def test_p2_template_with_a_wrong_answer_line_generates_fifty_from_its_worked_solution_when_asked(shared_data):
    path = shared_data / "gsm-symbolic" / "templates" / "p2-sample" / "0026.json"
    template = load_template(path, answer_from="solution")
    problems = [template.sample(0, index) for index in range(50)]
    assert len({problem.question for problem in problems}) == 50
    checked = p2_sample(shared_data, "0026")  # the file as written: #answer and the '####' line both kept
    for problem in problems:
        env = template.draw(make_rng(template.id, 0, problem.meta["index"]))
        for step in template.plan:
            for condition in step.checks:
                assert unwrap(condition.expression.run(env)), condition.expression.source
        assert problem.answer == format_answer(checked.final.run(env)) != format_answer(checked.answer.run(env))
        assert problem.solution.endswith(f"= {problem.answer} {problem.meta['vars']['food']} together.")
        assert problem.meta["answer_from"] == "solution"
    assert "answer_from" not in p2_sample(shared_data, "0010").sample(0, 0).meta


def test_answer_from_is_refused_outside_its_values_and_for_the_builtin_library(shared_data, tmp_path):
    from reasonloop.errors import ReasonloopError
    from reasonloop.sources.commands import pick_templates

    with pytest.raises(TemplateError, match="answer_from must be one of answer, solution, got 'hash'"):
        load_template(shared_data / "gsm-symbolic" / "templates" / "p2-sample" / "0010.json", answer_from="hash")
    with pytest.raises(ReasonloopError, match="--answer-from applies to template files"):
        pick_templates("builtin", "solution")
    no_final = {"question_annotated": "{a,1} apples?\n\n#init:\n- $a = range(1, 9)\n\n#answer: a",
                "answer_annotated": "So there are {a} apples.\n#### {a} apples"}  # text around the value: not computable
    with pytest.raises(TemplateError, match="needs a '####' line that computes the answer"):
        parse_template(no_final, name="words.json", answer_from="solution")


def tiny(conditions: str, init: str = "- $a = range(1, 40)\n- $b = range(1, 40)\n- $c = range(1, 40)\n",
         answer: str = "a + b + c", max_tries: int = 50, max_enumerated: int = 100_000):
    data = {"question_annotated": f"{{a,1}} {{b,2}} {{c,3}}?\n\n#init:\n{init}\n#conditions:\n{conditions}\n\n"
                                  f"#answer: {answer}",
            "answer_annotated": f"{{a}} + {{b}} + {{c}} = <<{{a}}+{{b}}+{{c}}={{a+b+c}}>>{{a+b+c}}\n#### {{a+b+c}}"}
    template = parse_template(data, name="tiny.json", check=False)
    template.max_tries, template.max_enumerated = max_tries, max_enumerated
    return template


def test_enumeration_samples_uniformly_among_the_satisfying_assignments():
    template = tiny("- a * b * c == 1000\n- a < b < c")  # (2,20,25) (4,10,25) (5,8,25) (5,10,20): rare among 59,319
    counts = Counter(tuple(template.sample(0, index).meta["vars"].values()) for index in range(400))
    assert sorted(counts) == [(2, 20, 25), (4, 10, 25), (5, 8, 25), (5, 10, 20)]
    assert all(80 <= count <= 120 for count in counts.values()), counts


def test_unsatisfiable_only_when_enumeration_proves_it():
    template = tiny("- a * b * c == 1001\n- a > 13")  # 1001 = 7*11*13: no divisor a in 14..39
    with pytest.raises(TemplateError, match=r"conditions unsatisfiable: none of the 39,546 assignments .*"
                                            r"'a \* b \* c == 1001' failed 39,546x"):
        template.sample(0, 0)  # 39,546 = 26 values of a (a > 13 filters the range) x 39 x 39


def test_space_too_large_names_its_size_and_the_failing_conditions():
    template = tiny("- a * b * c * d == 7", max_enumerated=10_000, init="- $a = range(2, 400)\n- $b = range(2, 400)\n"
                    "- $c = range(2, 400)\n- $d = range(2, 400)\n")
    with pytest.raises(TemplateError) as error:
        template.sample(0, 0)
    message = str(error.value)
    assert "too large to enumerate (more than 10,000 partial assignments)" in message, message
    assert "'a * b * c * d == 7' failed" in message
    assert "space of 25,091,827,216 assignments" in message  # 398^4


# ------------------------------------------------------------------ defaults outside their domain


# Defaults (the original question's values) that the pool we supply cannot produce, and why.
OUTSIDE_OUR_POOLS = {
    "Prince Thaddeus": "names_male holds names, not titles", "Prince Arthur": "names_male holds names, not titles",
    "Prince Walter": "names_male holds names, not titles", "Prince Bruce": "names_male holds names, not titles",
    "Grandma": "names_female holds names, not titles",
    "1/10": "fraction_alph holds words; p1/0028's original writes a numeral",
    "a quarter": "fraction_alph holds the published instances' hyphenated words",
    "quarter": "fraction_alph holds the published instances' hyphenated words",
    "0.25": "fraction_decimals holds 0.1..0.9 as published; 0010's original price is $0.25",
}


def defaults_outside_their_domain(templates: dict) -> dict[str, list[tuple[str, str, str]]]:
    """{'pool' | 'file': [(template, variable, default)]}: defaults a plain draw never gives."""
    outside: dict[str, list] = {"pool": [], "file": []}
    for name, template in templates.items():
        for step in template.plan:
            candidates = step.assignment.candidates
            if not candidates.constant:
                continue
            values = evaluate(ast.unparse(candidates.tree))  # the domain before the file's own conditions
            if not isinstance(values, (list, tuple, range)) or (values.__class__ is tuple and len(values) == 2):
                continue
            items = [as_labeled(item) for item in values]
            texts = {item.text.lower() if isinstance(item, Labeled) else str(item).lower() for item in items}
            numbers = {unwrap(item) for item in items if not isinstance(item, str)}
            kind = "pool" if any(isinstance(node, ast.Name) and node.id in POOLS
                                 for node in ast.walk(candidates.tree)) else "file"
            for variable in step.assignment.targets:
                default = template.defaults.get(variable, "").strip()
                if default and default.lower() not in texts and parse_number_text(default) not in numbers:
                    outside[kind].append((name, variable, default))
    return outside


def test_every_default_outside_its_pool_or_range_is_listed_with_its_reason(shared_data):
    templates = {name: load_template(path, check=False) for name, path in pinned_files(shared_data).items()
                 if not name.startswith("builtin")}
    assert len(templates) == 202
    outside = defaults_outside_their_domain(templates)
    for name, variable, default in outside["pool"]:
        print(f"{name} {variable}={default!r}: {OUTSIDE_OUR_POOLS[default]}")
    assert {default for _, _, default in outside["pool"]} == set(OUTSIDE_OUR_POOLS)
    assert ("p2-sample/0010", "frac1", "0.25") in outside["pool"]
    # The files' own ranges and lists usually leave the original value out on purpose
    # (instances are to differ from the question they came from): data, not our choice.
    for name, variable, default in outside["file"]:
        print(f"{name} {variable}={default!r}: outside the file's own range or list")
    assert len(outside["file"]) == 422
