"""Small text utilities shared by sources and the verifier (no heavy imports)."""

from __future__ import annotations

import re

BOXED_COMMANDS = ("\\boxed", "\\fbox")
GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (nested braces allowed); None if absent or unterminated."""
    start = max(text.rfind(cmd + "{") for cmd in BOXED_COMMANDS)
    if start < 0:
        return None
    open_at = text.index("{", start)
    depth = 0
    for pos in range(open_at, len(text)):
        char = text[pos]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : pos]
    return None


def gsm8k_final_answer(solution: str) -> str | None:
    """The `#### N` answer of a GSM8K solution with thousands separators removed."""
    match = GSM8K_ANSWER.search(solution)
    if not match:
        return None
    return match.group(1).replace(",", "").strip()


def gsm8k_rationale(solution: str) -> str:
    """The worked solution before the `####` line."""
    return solution.split("####")[0].rstrip()


def normalize_question(text: str) -> str:
    """Lower-case, collapse whitespace and drop punctuation: for dedup and overlap checks."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def format_number(value: float | int | str) -> str:
    """Render a numeric answer without a spurious `.0` (145.0 -> '145')."""
    if isinstance(value, str):
        try:
            value = float(value.replace(",", ""))
        except ValueError:
            return value.strip()
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")


def strip_calculator_annotations(solution: str) -> str:
    """GSM8K's `<<48/2=24>>24` -> `24`."""
    return CALCULATOR_ANNOTATION.sub("", solution)
