"""A ProcessBench-style first-error benchmark built from template solutions.

ProcessBench (Zheng et al. 2024) asks a critic for the index of a solution's first wrong
step, or "none". Here the solutions are the built-in templates' worked solutions, made
wrong in a way the calculator step check (`reasonloop.verify.steps`) cannot see:

- in one calculator call `<<EXPR=VALUE>>` (chosen with the seed), one operand is replaced
  by another number of the question; that call is recomputed (`models.calculator`), and so
  is every later call whose operands used a changed result; restated results, later prose
  numbers and the `#### N` line follow. Every step stays arithmetic-correct and grounded,
  the final answer changes (a corruption that leaves it unchanged or that the step check
  flags is dropped and counted);
- the untouched solution of the same problem is kept with the label "none" (-1).

Labels are step indices of `reasonloop.search.steps.split_steps`. The score is ProcessBench's:
accuracy on the erroneous solutions (exact first-error index), accuracy on the correct ones
(predicting none), and their harmonic mean, F1. A reward model predicts the first step
whose score is below `threshold` (0.5); the rule baseline predicts the first step the
calculator check flags.

    items, dropped = build_benchmark(problems, PLAIN_FORMAT, seed=0)
    processbench_f1([i.label for i in items], rule_predictions(items))
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from reasonloop.models.calculator import calculate
from reasonloop.prompts import PromptFormat
from reasonloop.records import Problem
from reasonloop.search.steps import split_steps
from reasonloop.verify.extract import extract_answer
from reasonloop.verify.steps import NUMBER, as_number, check_steps

CALL = re.compile(r"<<([^<>=]*)=([^<>]*)>>(\d[\d,]*(?:\.\d+)?)?")
NONE = -1


@dataclass
class BenchItem:
    problem_id: str
    question: str
    prompt: str
    steps: list[str]
    label: int  # index of the first wrong step; NONE (-1) for an untouched solution

    @property
    def text(self) -> str:
        return "".join(self.steps)


def build_benchmark(problems: Sequence[Problem], fmt: PromptFormat, *, seed: int = 0) -> tuple[list[BenchItem], dict[str, int]]:
    """Per problem with a calculator solution: its untouched solution and one corrupted copy."""
    rng = random.Random(seed)
    items: list[BenchItem] = []
    dropped = {"no calculator call": 0, "no other question number": 0, "answer unchanged": 0, "step check flags it": 0}
    for problem in problems:
        text = fmt.render_target(problem.solution, problem.answer)
        if not problem.solution or not CALL.search(text):
            dropped["no calculator call"] += 1
            continue
        prompt = fmt.render_prompt(problem.question)
        items.append(BenchItem(problem.id, problem.question, prompt, split_steps(text), NONE))
        corrupted, reason = corrupt(problem, text, rng)
        if corrupted is None:
            dropped[reason] += 1
            continue
        changed = split_steps(corrupted)
        items.append(BenchItem(problem.id, problem.question, prompt, changed, first_changed_step(split_steps(text), changed)))
    return items, dropped


def first_changed_step(original: Sequence[str], changed: Sequence[str]) -> int:
    """Index of the first step `changed` differs in (its last shared index if one is a prefix of the other)."""
    return next((i for i, (a, b) in enumerate(zip(original, changed)) if a != b), min(len(original), len(changed)) - 1)


def corrupt(problem: Problem, text: str, rng: random.Random, *, slip: bool = False) -> tuple[str | None, str]:
    """`text` with one operand swapped for another question number and everything after recomputed.

    With `slip`, the operand becomes a number in neither the question nor the solution (the
    copying slip `verify.steps` flags) instead, and the step check is not asked."""
    calls = list(CALL.finditer(text))
    question_numbers = sorted({n for n in (as_number(t) for t in NUMBER.findall(problem.question)) if n is not None})
    targets = [(i, m) for i, call in enumerate(calls) for m in NUMBER.finditer(call.group(1))]
    rng.shuffle(targets)
    reason = "no other question number"
    for index, operand in targets:
        numbers = slip_numbers(text, problem.question, operand.group(), rng) if slip else rng.sample(question_numbers, len(question_numbers))
        for number in numbers:
            if number == as_number(operand.group()):
                continue
            result = recompute(text, calls, index, operand, number)
            if result is None:
                continue
            final = extract_answer(result)
            if final is None or as_number(final) == as_number(problem.answer):
                reason = "answer unchanged"
                continue
            if not slip and not check_steps(problem.question, result).consistent:
                reason = "step check flags it"
                continue
            return result, ""
    return None, reason


def slip_numbers(text: str, question: str, operand: str, rng: random.Random, count: int = 4) -> list[Fraction]:
    """Up to `count` whole numbers near `operand` (within a factor of two) that appear nowhere in the question or `text`."""
    value = as_number(operand)
    if value is None or value.denominator != 1:
        return []
    present = {as_number(t) for t in NUMBER.findall(question + " " + text)}
    low, high = max(2, int(value) // 2), max(9, int(value) * 2)
    pool = [n for n in range(low, high + 1) if Fraction(n) not in present]
    return [Fraction(n) for n in rng.sample(pool, min(count, len(pool)))]


def recompute(text: str, calls: list[re.Match], target: int, operand: re.Match, number: Fraction) -> str | None:
    changed: dict[Fraction, str] = {}

    def remap(segment: str) -> str:
        return NUMBER.sub(lambda m: changed.get(as_number(m.group()), m.group()), segment)

    out, position = [], 0
    for index, call in enumerate(calls):
        expression, value, restated = call.group(1), call.group(2), call.group(3)
        prose = text[position : call.start()]
        out.append(remap(prose) if index > target else prose)
        if index == target:
            expression = expression[: operand.start()] + number_text(number) + expression[operand.end() :]
            out[-1] = rewrite_written(prose, call.group(1), expression)
        elif index > target:
            expression = remap(expression)
        new_value = calculate(expression) if index >= target else value
        if new_value is None or as_number(new_value) <= 0:
            return None
        if as_number(new_value) != as_number(value):
            changed[as_number(value)] = new_value
        out.append(f"<<{expression}={new_value}>>" + (new_value if restated is not None else ""))
        position = call.end()
    out.append(remap(text[position:]))
    return "".join(out)


WRITTEN = re.compile(r"[\d\s+\-*/().,]+=\s*$")


def rewrite_written(prose: str, old: str, new: str) -> str:
    """'... so 72 - 12 = ' before `<<72-12=60>>`: the written copy of the expression follows the call's change."""
    match = WRITTEN.search(prose)
    if not match or re.sub(r"\s", "", match.group()) != re.sub(r"\s", "", old) + "=":
        return prose
    numbers = iter(NUMBER.findall(new))
    written = NUMBER.sub(lambda m: next(numbers, m.group()), match.group())
    return prose[: match.start()] + written


def number_text(number: Fraction) -> str:
    return str(number.numerator) if number.denominator == 1 else repr(float(number))


# ---------------------------------------------------------------- scoring


def processbench_f1(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """ProcessBench's score: accuracy on erroneous and on correct solutions, and their harmonic mean."""
    wrong = [(l, p) for l, p in zip(labels, predictions) if l != NONE]
    right = [(l, p) for l, p in zip(labels, predictions) if l == NONE]
    error_acc = sum(l == p for l, p in wrong) / len(wrong) if wrong else 0.0
    correct_acc = sum(p == NONE for _, p in right) / len(right) if right else 0.0
    f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc) if error_acc + correct_acc else 0.0
    return {"error_acc": error_acc, "correct_acc": correct_acc, "f1": f1, "n_error": len(wrong), "n_correct": len(right)}


def first_below(scores: Sequence[float], threshold: float) -> int:
    return next((i for i, score in enumerate(scores) if score < threshold), NONE)


def reward_predictions(model: Any, items: Sequence[BenchItem], threshold: float = 0.5) -> list[int]:
    """First step a reward model (`search.reward.RewardModel`) scores below `threshold`."""
    scores = model.step_scores([i.prompt for i in items], [i.steps for i in items])
    return [first_below(s, threshold) for s in scores]


def rule_predictions(items: Sequence[BenchItem]) -> list[int]:
    """The calculator check's first flagged step (a final-answer flaw: the last step); none when consistent."""
    predictions = []
    for item in items:
        flaws = check_steps(item.question, item.text).flaws
        if not flaws:
            predictions.append(NONE)
            continue
        match = re.match(r"step (\d+):", flaws[0])
        predictions.append(step_of_call(item, int(match.group(1)) - 1) if match else len(item.steps) - 1)
    return predictions


def step_of_call(item: BenchItem, call_index: int) -> int:
    start = list(CALL.finditer(item.text))[call_index].start()
    end = 0
    for index, step in enumerate(item.steps):
        end += len(step)
        if start < end:
            return index
    return len(item.steps) - 1
