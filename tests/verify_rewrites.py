"""Rewrite a MATH answer into equivalent alternative forms (for the verifier's tests and benchmark).

Each rule returns the rewritten answer, or None when it does not apply. The rules follow
issue #13: \\dfrac <-> \\frac, a terminating fraction as a decimal, \\text{} units and degree
signs added, spaces and \\left/\\right added, unordered sets and solution lists reordered,
`x = ` prefixes.
"""

from __future__ import annotations

import re
from fractions import Fraction

from reasonloop.verify.normalize import closing_index, split_top_level

SIMPLE_FRACTION = re.compile(r"^(-?)\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?$")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
DIGIT_GROUPS = re.compile(r"\d,(?:\\!)?\s*\d{3}")  # `10,\!080`, `58,500`: one number, not a list


def swap_frac(answer: str) -> str | None:
    if "\\dfrac" in answer:
        return answer.replace("\\dfrac", "\\frac")
    if "\\frac" in answer:
        return answer.replace("\\frac", "\\dfrac")
    return None


def fraction_as_decimal(answer: str) -> str | None:
    match = SIMPLE_FRACTION.match(answer.replace(" ", ""))
    if not match:
        return None
    value = Fraction(int(match.group(2)), int(match.group(3)))
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    places = 0
    while (value * 10**places).denominator != 1:
        places += 1
    text = f"{float(value):.{places}f}"
    return match.group(1) + text


def fraction_as_slash(answer: str) -> str | None:
    match = SIMPLE_FRACTION.match(answer.replace(" ", ""))
    return f"{match.group(1)}{match.group(2)}/{match.group(3)}" if match else None


def decimal_as_fraction(answer: str) -> str | None:
    if not NUMBER.match(answer) or "." not in answer:
        return None
    value = Fraction(answer)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def thousands_separators(answer: str) -> str | None:
    return f"{int(answer):,}" if answer.lstrip("-").isdigit() and abs(int(answer)) >= 1000 else None


def add_unit_text(answer: str) -> str | None:
    return f"{answer}\\text{{ units}}" if NUMBER.match(answer) else None


def add_degree_sign(answer: str) -> str | None:
    return f"{answer}^\\circ" if NUMBER.match(answer) and "^\\circ" not in answer else None


def add_spaces(answer: str) -> str | None:
    if DIGIT_GROUPS.search(answer):
        return None
    spaced = re.sub(r"\s*([+=,]|\\cup|\\pm)\s*", r" \1 ", answer)
    spaced = re.sub(r"(?<=[\w}])-", " - ", spaced)
    spaced = " ".join(spaced.split())
    return spaced if spaced != answer else None


def add_left_right(answer: str) -> str | None:
    if "\\left" in answer or not answer or answer[0] not in "([" or closing_index(answer) != len(answer) - 1:
        return None
    return f"\\left{answer[0]} {answer[1:-1]} \\right{answer[-1]}"


def reorder(answer: str) -> str | None:
    if "=" in answer:
        return None
    if answer.startswith("\\{") and answer.endswith("\\}"):
        items = split_top_level(answer[2:-2])
        return "\\{" + ", ".join(reversed(items)) + "\\}" if len(items) > 1 else None
    pieces = split_top_level(answer, "\\cup")
    if len(pieces) > 1:
        return " \\cup ".join(reversed(pieces))
    items = split_top_level(answer)
    if len(items) > 1 and not DIGIT_GROUPS.search(answer) and not (answer[0] in "([" and answer[-1] in ")]"):
        return ", ".join(reversed(items))
    return None


def variable_prefix(answer: str) -> str | None:
    if any(mark in answer for mark in ("=", "\\in", "\\text", "\\cup")) or len(split_top_level(answer)) > 1:
        return None
    return f"x = {answer}"


def explicit_times(answer: str) -> str | None:
    """`2\\sqrt{5}` -> `2 \\cdot \\sqrt{5}`, `3x` -> `3 \\cdot x` (not `1\\frac{4}{5}`, a mixed number)."""
    return re.sub(r"(\d)\s*(\\sqrt|\\pi|[a-z](?![a-z]))", r"\1 \\cdot \2", answer) if "\\text" not in answer else None


def sqrt_without_braces(answer: str) -> str | None:
    return re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", answer)


def integer_as_decimal(answer: str) -> str | None:
    return f"{answer}.0" if answer.lstrip("-").isdigit() else None


def sign_into_numerator(answer: str) -> str | None:
    match = SIMPLE_FRACTION.match(answer.replace(" ", ""))
    if not match or not match.group(1):
        return None
    return f"\\frac{{-{match.group(2)}}}{{{match.group(3)}}}"


def unwrap_text(answer: str) -> str | None:
    match = re.fullmatch(r"\\text\{([^{}]*)\}", answer)
    return match.group(1) if match else None


RULES = {
    "dfrac<->frac": swap_frac,
    "fraction->decimal": fraction_as_decimal,
    "fraction->a/b": fraction_as_slash,
    "decimal->fraction": decimal_as_fraction,
    "thousands separators": thousands_separators,
    "\\text{} units": add_unit_text,
    "degree sign": add_degree_sign,
    "spaces": add_spaces,
    "\\left/\\right": add_left_right,
    "reordered": reorder,
    "x = prefix": variable_prefix,
    "explicit \\cdot": explicit_times,
    "\\sqrt without braces": sqrt_without_braces,
    "integer as N.0": integer_as_decimal,
    "sign into numerator": sign_into_numerator,
    "\\text{} unwrapped": unwrap_text,
}


def rewrites(answer: str) -> list[tuple[str, str]]:
    """(rule name, rewritten answer) for every rule that applies to `answer`."""
    found = []
    for name, rule in RULES.items():
        rewritten = rule(answer)
        if rewritten is not None and rewritten != answer:
            found.append((name, rewritten))
    return found
