"""Find the final answer in a completion.

Markers, strongest first; within each the last occurrence wins:
1. `\\boxed{...}` / `\\fbox{...}` (nested braces allowed);
2. `#### N` (GSM8K);
3. `The (final) answer is ...` / `Answer: ...`;
4. `A: ...` at the start of a line (the final line of the GPT-3 GSM8K solutions: a
   dataset's own final-answer marker, so it counts as final form);
5. only when asked (`last_number_fallback=True`), the last number in the text. Off by
   default everywhere: an unfinished completion that stops on the right number is not an
   answer. It exists for evaluating models that do not follow any answer format.

The answer is returned as written, minus `$` delimiters, markdown bold and a trailing
period; normalisation (units, `\\left`, thousands separators) happens when comparing.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from reasonloop.text import last_boxed

GSM8K_MARKER = re.compile(r"####[ \t]*([^\n]*)")
ANSWER_IS = re.compile(r"(?:final answer|answer)(?: is|:)[ \t]*[:=]?[ \t]*([^\n]*)", re.I)
A_LINE = re.compile(r"^[ \t]*A:[ \t]*([^\n]*)", re.M)
LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
SENTENCE_END = re.compile(r"\.(?:\s|$)")
MARKDOWN = re.compile(r"\*\*|__")
MAX_LINE_CHARS = 2000
FINAL_FORM_MARKERS = (("####", GSM8K_MARKER), ("answer is", ANSWER_IS), ("A:", A_LINE))
FINAL_FORM, LAST_NUMBER_RULE = "final-form", "last-number"


class Found(NamedTuple):
    """An extracted answer with the rule (`final-form` / `last-number`) and marker that found it."""

    answer: str
    rule: str
    marker: str


def extract_answer(completion: str, *, last_number_fallback: bool = False) -> str | None:
    """The final answer written in `completion`, or None when it gives none."""
    found = find_answer(completion, last_number_fallback=last_number_fallback)
    return found.answer if found else None


def find_answer(completion: str, *, last_number_fallback: bool = False) -> Found | None:
    """The final answer and how it was found: a final-form marker (`\\boxed`, `####`,
    `answer is`, `A:`), else (only with `last_number_fallback`) the last number."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    boxed = last_boxed(completion)
    if boxed is not None and clean(boxed):
        return Found(clean(boxed), FINAL_FORM, "\\boxed")
    for marker, pattern in FINAL_FORM_MARKERS:
        answer = last_match(pattern, completion)
        if answer:
            return Found(answer, FINAL_FORM, marker)
    number = last_number(completion) if last_number_fallback else None
    return Found(number, LAST_NUMBER_RULE, "last number") if number else None


def last_match(pattern: re.Pattern, text: str) -> str | None:
    found = None
    for match in pattern.finditer(text):
        found = match
    if found is None:
        return None
    return clean(first_sentence(found.group(1)[:MAX_LINE_CHARS])) or None


def first_sentence(line: str) -> str:
    """`18 dollars. She then...` -> `18 dollars` (a decimal point is followed by a digit, not a space)."""
    end = SENTENCE_END.search(line)
    return line[: end.start()] if end else line


def clean(answer: str) -> str:
    answer = MARKDOWN.sub("", answer).strip()
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer.rstrip(".").strip()


def last_number(text: str) -> str | None:
    found = None
    for match in LAST_NUMBER.finditer(text):
        found = match
    return found.group(0).rstrip(",") if found else None
