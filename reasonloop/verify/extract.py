"""Find the final answer in a completion.

Markers, strongest first; within each the last occurrence wins:
1. `\\boxed{...}` / `\\fbox{...}` (nested braces allowed);
2. `#### N` (GSM8K);
3. `The (final) answer is ...` / `Answer: ...`;
4. `A: ...` at the start of a line (GPT-3 GSM8K solutions);
5. optionally the last number in the text. This fallback is off for MATH-style answers,
   where a stray number is rarely the answer, and on for numeric (GSM8K-style) ones;
   `grade` chooses by the reference, `extract_answer` alone defaults to off.

The answer is returned as written, minus `$` delimiters, markdown bold and a trailing
period; normalisation (units, `\\left`, thousands separators) happens when comparing.
"""

from __future__ import annotations

import re

from reasonloop.text import last_boxed

GSM8K_MARKER = re.compile(r"####[ \t]*([^\n]*)")
ANSWER_IS = re.compile(r"(?:final answer|answer)(?: is|:)[ \t]*[:=]?[ \t]*([^\n]*)", re.I)
A_LINE = re.compile(r"^[ \t]*A:[ \t]*([^\n]*)", re.M)
LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
SENTENCE_END = re.compile(r"\.(?:\s|$)")
MARKDOWN = re.compile(r"\*\*|__")
MAX_LINE_CHARS = 2000


def extract_answer(completion: str, *, last_number_fallback: bool | None = None) -> str | None:
    """The final answer written in `completion`, or None when it gives none."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    boxed = last_boxed(completion)
    if boxed is not None and clean(boxed):
        return clean(boxed)
    for pattern in (GSM8K_MARKER, ANSWER_IS, A_LINE):
        answer = last_match(pattern, completion)
        if answer:
            return answer
    if last_number_fallback:
        return last_number(completion)
    return None


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
