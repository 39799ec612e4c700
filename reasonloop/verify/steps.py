"""Is a worked solution's arithmetic grounded? A process check of GSM8K-style calculator steps.

The answer check says whether the final number is right; it cannot see a solution that
reaches it by luck, or one whose steps are wrong where the answer is wrong. Small models'
typical slip is a number copied wrongly — an operand that is in neither the question nor
an earlier result (`19 * 4` when the question says 10), a result restated as another
number (`<<18-6=12>>6 passengers`), a final answer that is not the last result. This check
reads each `<<EXPRESSION=RESULT>>` step and flags exactly those:

    from reasonloop.verify.steps import check_steps
    check_steps("Tom has 18 apples and eats 6.", " 18 - 6 = <<18-6=12>>12 apples.\\n#### 12").consistent  # True
    check_steps("Tom has 18 apples and eats 6.", " 18 - 6 = <<18-6=12>>6 apples.\\n#### 12").flaws
    # ('step 1: the result 12 is restated as 6',)

Operands may also be common constants of word problems (small counts, 24, 60, 100, ...:
"twice", "per hour", "percent"). Expressions are parsed with `ast`, never evaluated.
A solution without calculator steps has nothing to check and passes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

from reasonloop.models.calculator import calculate
from reasonloop.verify.extract import extract_answer

STEP = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
COMMON_CONSTANTS = frozenset(Fraction(n) for n in [*range(13), 24, 52, 60, 100, 365, 1000])


@dataclass(frozen=True)
class StepCheck:
    steps: int  # calculator steps read
    flaws: tuple[str, ...]  # one line per failed check, in order

    @property
    def consistent(self) -> bool:
        return not self.flaws

    @property
    def score(self) -> float:
        """Fraction of checks passed (each step's operands, its restated result, the final answer); 1.0 with no steps."""
        checks = 2 * self.steps + (1 if self.steps else 0)
        return 1.0 - len(self.flaws) / checks if checks else 1.0


def as_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").rstrip("."))
    except (ValueError, ZeroDivisionError):
        return None


def operands(expression: str) -> list[Fraction]:
    """The literal numbers of an arithmetic expression the calculator reads."""
    tree = ast.parse(expression.strip(), mode="eval")
    return [Fraction(str(node.value)) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and type(node.value) in (int, float)]


def check_steps(question: str, solution: str) -> StepCheck:
    """Check every calculator step of `solution` against `question` and the steps before it."""
    known = {as_number(n) for n in NUMBER.findall(question)} | COMMON_CONSTANTS
    flaws: list[str] = []
    last: Fraction | None = None  # the latest step's result
    steps = list(STEP.finditer(solution))
    for index, step in enumerate(steps, start=1):
        expression, written = step.group(1), step.group(2)
        computed = calculate(expression)
        if computed is None:
            flaws.append(f"step {index}: {expression.strip()!r} is no arithmetic the calculator reads")
        elif ungrounded := [n for n in operands(expression) if n not in known]:
            flaws.append(f"step {index}: {expression.strip()!r} uses {', '.join(map(str, ungrounded))}, "
                         "in neither the question nor an earlier result")
        result = as_number(computed or written)
        restated = NUMBER.match(solution, step.end())
        if result is None or restated is None or as_number(restated.group()) != result:
            flaws.append(f"step {index}: the result {written.strip()} is restated as "
                         f"{restated.group() if restated else 'nothing'}")
        if result is not None:
            known.add(result)
            last = result
    if steps:
        final = extract_answer(solution)
        if final is None or as_number(final) != last:
            flaws.append(f"final answer {final} is not the last result {last}")
    return StepCheck(len(steps), tuple(flaws))


def make_step_reward(*, question_column: str = "question") -> Callable[..., list[float]]:
    """A TRL reward function named `step_reward`: `check_steps(...).score` of each completion,
    a dense signal that tells apart wrong answers with grounded steps from copied-wrong numbers."""
    from reasonloop.verify.reward import completion_text

    def step_reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        questions = columns.get(question_column)
        if questions is None:
            raise ValueError(f"the step reward needs the dataset column {question_column!r}; "
                             f"columns passed: {sorted(columns) or 'none'}")
        return [check_steps(str(question), completion_text(completion)).score
                for question, completion in zip(questions, completions)]

    step_reward.__name__ = step_reward.__qualname__ = "step_reward"
    return step_reward
