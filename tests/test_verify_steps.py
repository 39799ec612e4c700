"""The step check: grounded operands, restated results, final answer = last result; the step reward."""

from __future__ import annotations

import pytest

from reasonloop.verify.steps import check_steps, make_step_reward

QUESTION = "A bus leaves with 18 passengers. At the first stop 6 get off and 4 get on. How many are on the bus?"
GOOD = (" After 6 get off there are 18 - 6 = <<18-6=12>>12 passengers.\n"
        "After 4 get on there are 12 + 4 = <<12+4=16>>16 passengers.\n#### 16")


def test_every_gold_solution_of_the_builtin_library_is_consistent():
    from reasonloop.sources.templates.builtin import builtin_problems

    problems = builtin_problems(3, seed=11)
    checks = [check_steps(p.question, f"{p.solution}\n#### {p.answer}") for p in problems]
    assert len(problems) > 200 and sum(c.steps for c in checks) > len(problems)
    assert [c.flaws for c in checks if not c.consistent] == []


def test_a_consistent_solution_scores_one():
    check = check_steps(QUESTION, GOOD)
    assert check.consistent and check.steps == 2 and check.score == 1.0


@pytest.mark.parametrize("solution, flaw", [
    (GOOD.replace("<<18-6=12>>12", "<<18-6=12>>6"), "step 1: the result 12 is restated as 6"),
    (GOOD.replace("12 + 4 = <<12+4=16>>16", "19 + 4 = <<19+4=23>>23").replace("#### 16", "#### 23"),
     "step 2: '19+4' uses 19, in neither the question nor an earlier result"),
    (GOOD.replace("#### 16", "#### 18"), "final answer 18 is not the last result 16"),
    (GOOD.replace("<<12+4=16>>16", "<<12+x=16>>16"), "step 2: '12+x' is no arithmetic the calculator reads"),
])
def test_each_kind_of_flaw_is_named(solution, flaw):
    check = check_steps(QUESTION, solution)
    assert flaw in check.flaws and len(check.flaws) == 1
    assert check.score == pytest.approx(1 - 1 / 5)  # 2 steps x (operands, restatement) + the final answer


def test_common_constants_and_earlier_results_are_grounded():
    question = "A faucet drips 9 milliliters every minute. How many milliliters drip out in 5 hours?"
    solution = " In one hour it drips 9 * 60 = <<9*60=540>>540 milliliters.\nIn 5 hours 540 * 5 = <<540*5=2700>>2700.\n#### 2700"
    assert check_steps(question, solution).consistent
    assert not check_steps(question, solution.replace("9 * 60 = <<9*60", "9 * 61 = <<9*61")).consistent


def test_a_solution_without_calculator_steps_has_nothing_to_check():
    check = check_steps(QUESTION, "The bus has 16 passengers.\n#### 16")
    assert check.consistent and check.steps == 0 and check.score == 1.0


def test_step_reward_scores_completions_against_their_question_column():
    reward = make_step_reward()
    assert reward.__name__ == "step_reward"
    flawed = GOOD.replace("<<18-6=12>>12", "<<18-6=12>>6")
    assert reward(["p", "p"], [GOOD, [{"role": "assistant", "content": flawed}]], question=[QUESTION] * 2) == \
        [1.0, pytest.approx(0.8)]
    with pytest.raises(ValueError, match="needs the dataset column 'question'; columns passed: \\['answer'\\]"):
        reward(["p"], [GOOD], answer=["16"])
