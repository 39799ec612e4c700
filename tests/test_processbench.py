"""ProcessBench-style benchmark from template solutions: corruptions the calculator check cannot
see, first-error labels on the shared step splitter, ProcessBench's F1."""

from collections import Counter

from reasonloop.evaluate.processbench import (NONE, BenchItem, build_benchmark, processbench_f1, rule_predictions)
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.records import Problem
from reasonloop.sources.templates import builtin_templates, generate_problems
from reasonloop.verify.extract import extract_answer
from reasonloop.verify.steps import check_steps

BUS = Problem(question="A bus has 15 passengers. 12 get off and 10 get on. How many are on the bus?", answer="13",
              solution="After 12 get off there are 15 - 12 = <<15-12=3>>3 passengers.\n"
                       "After 10 get on there are 3 + 10 = <<3+10=13>>13 passengers.")


def test_a_corrupted_solution_is_recomputed_consistently_from_the_changed_step():
    items, dropped = build_benchmark([BUS], PLAIN_FORMAT, seed=0)
    untouched, corrupted = items
    assert untouched.label == NONE and dropped == dict.fromkeys(dropped, 0)
    assert corrupted.text == (" After 12 get off there are 15 - 12 = <<15-12=3>>3 passengers.\n"
                              "After 10 get on there are 12 + 10 = <<12+10=22>>22 passengers.\n#### 22")
    assert corrupted.label == 1 and check_steps(BUS.question, corrupted.text).consistent


def test_built_in_templates_every_corruption_is_invisible_to_the_step_check_and_wrong():
    problems = generate_problems(builtin_templates(), per_template=1, seed=0)
    items, dropped = build_benchmark(problems, PLAIN_FORMAT, seed=0)
    by_id = {p.id: p for p in problems}
    corrupted = [i for i in items if i.label != NONE]
    for item in corrupted:
        problem = by_id[item.problem_id]
        assert check_steps(problem.question, item.text).consistent
        assert extract_answer(item.text) != problem.answer
    assert len(items) - len(corrupted) == 78 and len(corrupted) == 78 - sum(dropped.values())
    assert len(corrupted) == 77 and Counter(i.label for i in corrupted)[0] == 32
    scores = processbench_f1([i.label for i in items], rule_predictions(items))
    assert scores["correct_acc"] == 1.0 and scores["error_acc"] == 0.0 and scores["f1"] == 0.0


def test_f1_is_the_harmonic_mean_of_the_two_accuracies():
    labels, predictions = [NONE, NONE, 0, 2, 1], [NONE, 1, 0, 1, 1]
    assert processbench_f1(labels, predictions) == {"error_acc": 2 / 3, "correct_acc": 0.5, "f1": 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5),
                                                    "n_error": 3, "n_correct": 2}
    item = BenchItem("x", "Tom has 3 apples and 4 pears.", "", [" 3 + 29 = <<3+29=32>>32.\n", "#### 32"], 0)
    assert rule_predictions([item]) == [0]  # 29 is in neither the question nor an earlier result
