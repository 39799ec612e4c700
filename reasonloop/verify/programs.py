"""Programs built from GSM8K calculator annotations: the plumbing check of program-aided solving.

A GSM8K solution marks each computation as `<<EXPRESSION=RESULT>>`. `annotation_program`
turns the steps into a program that assigns and prints each one,

    step_1 = 16 - 3 - 4
    print(step_1)
    step_2 = 9 * 2
    print(step_2)

to be run in the sandbox, and `check_printed` compares what it printed with the recorded
results. The expression is data from a file: it must be one the calculator reads (parsed
with `ast`, numbers and + - * / with parentheses only; `models/calculator.py`), and the
program holds the re-written parse tree, never the raw text, so nothing else can get in.
Printed values count as equal to the recorded ones within `REL_TOL` (relative, and
absolute below 1): Python prints `2/3*3` as `2.0` or `0.1*3` as `0.30000000000000004`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from reasonloop.models.calculator import calculate
from reasonloop.verify.steps import STEP, as_number

REL_TOL = 1e-6


@dataclass(frozen=True)
class AnnotationProgram:
    source: str
    expected: tuple[str, ...]  # the recorded result of each step the program prints, in order
    skipped: tuple[str, ...]  # one line per step left out (no arithmetic the calculator reads)


def annotation_program(solution: str) -> AnnotationProgram:
    """The program that assigns and prints each calculator step of `solution`."""
    lines, expected, skipped = [], [], []
    for index, step in enumerate(STEP.finditer(solution), start=1):
        expression, recorded = step.group(1).strip(), step.group(2).strip()
        if calculate(expression) is None:
            skipped.append(f"step {index}: {expression!r} is no arithmetic the calculator reads")
            continue
        name = f"step_{len(expected) + 1}"
        lines += [f"{name} = {ast.unparse(ast.parse(expression, mode='eval').body)}", f"print({name})"]
        expected.append(recorded)
    return AnnotationProgram("\n".join(lines) + "\n" if lines else "", tuple(expected), tuple(skipped))


def check_printed(stdout: str, expected: tuple[str, ...]) -> list[str]:
    """What differs between the printed lines and the recorded results; empty when all agree."""
    printed = stdout.splitlines()
    if len(printed) != len(expected):
        return [f"printed {len(printed)} lines for {len(expected)} steps"]
    problems = []
    for index, (line, recorded) in enumerate(zip(printed, expected), start=1):
        got, want = as_number(line), as_number(recorded)  # `1,250`, `0.75`, `3/4`
        if got is None or want is None:
            problems.append(f"step {index}: cannot compare {line!r} with {recorded!r}")
        elif abs(got - want) > REL_TOL * max(1, abs(want)):
            problems.append(f"step {index}: printed {line}, recorded {recorded}")
    return problems

