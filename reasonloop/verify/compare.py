"""The fast path: decide whether two final answers are the same answer, or say "undecided".

`answers_equal(prediction, reference)` returns True, False, or None; None hands the pair
to math-verify (in a worker process, see `grade.py`). Each answer is first classified into
a *form*: text, base-n numeral, matrix, tuple/interval, union of intervals, unordered
set/list of solutions, equation, or a scalar expression. Rules a reader may dispute
(documented in docs/verify.md):

- percent: `X%` matches both X (the number the question asked for) and X/100 (its value);
- units are not part of the value, except that two answers whose trailing units both state a
  power (`\\text{ cm}^2`, `in^{3}`, `square feet`, `cubic inches`) differ when the powers do
  (`27 \\text{ in}^3` != `27 \\text{ in}^2`; `27` = `27 \\text{ cm}^2`);
- decimals: a decimal with at least `decimal_digits` (default 6, allowed 3..15) significant
  digits matches a value it is the rounding or the truncation of (0.333333 = 1/3,
  0.666666 = 0.666667 = 2/3, 3.141592 = pi); with fewer it must be exact (0.333 != 1/3,
  3.14 != pi, 0.000067 != 0.0000672);
- base-n: `204_5` matches `204_{5}` and `204` (the subscript may be left out), never the
  decimal value 54, because the question asked for the base-n numeral;
- `x =`, `(x, y) =`, `x \\in` before an answer name the variable and are dropped;
- `a \\pm b` stands for the two answers a+b and a-b; comma-separated solutions are unordered;
- words (`\\text{Evelyn}`, `(B)`) compare without regard to case or parentheses;
- two equations are the same when one is a nonzero multiple of the other;
- expressions with variables are compared by value at fixed pseudo-random points.
"""

from __future__ import annotations

import cmath
import random
import re
from contextvars import ContextVar
from fractions import Fraction
from functools import lru_cache
from typing import Optional

from reasonloop.verify.latex import (
    LatexError, Node, NotExact, decimal_literal, exact, free_symbols, numeric, parse_expression,
)
from reasonloop.verify.normalize import closing_index, normalize, normalize_with_unit, split_top_level, unit_power

Decision = Optional[bool]  # True equal, False not equal, None undecided (ask math-verify)
Form = tuple

MAX_ITEMS = 64
ROUNDED_DECIMAL_DIGITS = 6  # the default precision policy (docs/verify.md)
DECIMAL_DIGITS_RANGE = (3, 15)  # fewer digits would equate 0.33 with 1/3; more than a double holds is noise
_decimal_digits: ContextVar[int] = ContextVar("decimal_digits", default=ROUNDED_DECIMAL_DIGITS)
CLOSE, APART = 1e-9, 1e-6
UNIT_POWERS_DIFFER = "unit powers"  # the "form" compare_answers names when the units' powers decided

MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}$", re.S)
BASE_N = re.compile(r"^(\d+)_\{?(\d+)\}?$")
CHOICE = re.compile(r"^\(([A-Za-z])\)$")
WORD = re.compile(r"^[A-Za-z][A-Za-z']+(?: [A-Za-z][A-Za-z']+)*$")
NAMED_VARIABLES = r"(?:[a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+|[a-zA-Z]\([a-z]\))"
VARIABLE_PREFIX = re.compile(rf"^{NAMED_VARIABLES}\s*(?:=|\\in\b)\s*(?=\S)")
TUPLE_PREFIX = re.compile(rf"^\(\s*{NAMED_VARIABLES}(?:\s*,\s*{NAMED_VARIABLES})+\s*\)\s*=\s*(?=\S)")
FUNCTION_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "ln", "log", "exp", "infty", "pi", "sqrt", "frac"}


# ---------------------------------------------------------------- forms


def classify(answer: str) -> Form:
    text = normalize(answer)
    return classify_normalized(text, raw=answer)


def classify_normalized(text: str, raw: str = "") -> Form:
    percent = text.endswith("%")
    if percent:
        text = text[:-1].rstrip()
    text = VARIABLE_PREFIX.sub("", TUPLE_PREFIX.sub("", text))
    word = as_word(text, raw)
    if word is not None:
        return ("text", word)
    if match := MATRIX.match(text):
        return ("matrix", matrix_cells(match.group(2)))
    if text.startswith("\\{") and text.endswith("\\}"):
        inner = text[2:-2].strip()
        return ("set", expand_items(split_top_level(inner) if inner else []))
    if len(union := split_top_level(text, "\\cup")) > 1:
        return ("union", [classify_normalized(part) for part in union])
    if len(items := split_top_level(text)) > 1:
        return ("set", expand_items(items))
    if bracketed(text) and len(items := items_inside(text)) > 1:
        return ("seq", text[0], items, text[-1])
    if match := BASE_N.match(text):
        return ("base", match.group(1).lstrip("0") or "0", int(match.group(2)))
    if "\\pm" in text:
        return ("set", expand_items([text]))
    sides = split_top_level(text, "=")
    if len(sides) == 2:
        return ("equation", sides[0], sides[1])
    return ("scalar", text, percent)


def as_word(text: str, raw: str) -> str | None:
    """`(B)`, `\\text{(B)}`, `Evelyn`: a choice letter or a word, as a lower-case key."""
    if match := CHOICE.match(text):
        return match.group(1).lower()
    if WORD.match(text) and text.lower() not in FUNCTION_WORDS:
        if len(text) >= 3 or "\\text" in raw:
            return text.lower()
    return None


def bracketed(text: str) -> bool:
    return len(text) > 1 and text[0] in "([" and text[-1] in ")]" and closing_index(text) == len(text) - 1


def items_inside(text: str) -> list[str]:
    return split_top_level(text[1:-1])


def matrix_cells(body: str) -> list[list[str]]:
    rows = [row for row in re.split(r"\\\\", body) if row.strip()]
    return [[cell.strip() for cell in row.split("&")] for row in rows]


def expand_items(items: list[str]) -> list[str]:
    """Drop `x =` prefixes and expand `a \\pm b` into `a + b` and `a - b`."""
    expanded = []
    for item in items:
        item = VARIABLE_PREFIX.sub("", item)
        if "\\pm" in item:
            expanded += [item.replace("\\pm", "+", 1), item.replace("\\pm", "-", 1)]
        else:
            expanded.append(item)
    return expanded


# ---------------------------------------------------------------- comparison


def answers_equal(prediction: str, reference: str) -> Decision:
    return compare_answers(prediction, reference)[0]


def compare_answers(prediction: str, reference: str, *, decimal_digits: int = ROUNDED_DECIMAL_DIGITS
                    ) -> tuple[Decision, str]:
    """The decision and the reference's form name (`scalar`, `set`, `matrix`...) for the reason line,
    or UNIT_POWERS_DIFFER when both answers end in units of different powers (`cm^2`, `cm^3`).

    `decimal_digits`: significant digits from which a decimal stands for the values it rounds
    or truncates (see the module docstring); outside DECIMAL_DIGITS_RANGE it is refused."""
    check_decimal_digits(decimal_digits)
    prediction_text, prediction_unit = normalize_with_unit(prediction)
    reference_text, reference_unit = normalize_with_unit(reference)
    if unit_powers_differ(prediction_unit, reference_unit):
        return False, UNIT_POWERS_DIFFER
    token = _decimal_digits.set(decimal_digits)
    try:
        reference_form = classify_normalized(reference_text, raw=reference)
        return forms_equal(classify_normalized(prediction_text, raw=prediction), reference_form), reference_form[0]
    finally:
        _decimal_digits.reset(token)


def unit_powers_differ(unit_a: str, unit_b: str) -> bool:
    """Both units state a power (`cm^2`, `cubic feet`) and the powers differ; otherwise units do not count."""
    power_a, power_b = unit_power(unit_a), unit_power(unit_b)
    return power_a is not None and power_b is not None and power_a != power_b


def check_decimal_digits(decimal_digits: object) -> None:
    low, high = DECIMAL_DIGITS_RANGE
    if type(decimal_digits) is not int or not low <= decimal_digits <= high:
        raise ValueError(f"decimal_digits must be an integer from {low} to {high}, got {decimal_digits!r}")


def forms_equal(a: Form, b: Form) -> Decision:
    if a[0] == "text" or b[0] == "text":
        return text_key(a) == text_key(b)
    if a[0] == "base" or b[0] == "base":
        return base_equal(a, b)
    if a[0] == "set" and b[0] != "set" and len(a[1]) == 1:
        a = classify_normalized(a[1][0])
    if b[0] == "set" and a[0] != "set" and len(b[1]) == 1:
        b = classify_normalized(b[1][0])
    if a[0] != b[0]:
        return False
    return COMPARE[a[0]](a, b)


def text_key(form: Form) -> str:
    if form[0] == "text":
        return form[1]
    if form[0] == "scalar":
        return re.sub(r"[^a-z0-9.]", "", form[1].lower())
    return repr(form)


def base_equal(a: Form, b: Form) -> Decision:
    if a[0] == "base" and b[0] == "base":
        return a[1:] == b[1:]
    base, other = (a, b) if a[0] == "base" else (b, a)
    return other[0] == "scalar" and not other[2] and other[1].isdigit() and (other[1].lstrip("0") or "0") == base[1]


def scalars_equal(a: Form, b: Form) -> Decision:
    nodes_a, nodes_b = scalar_candidates(a), scalar_candidates(b)
    if nodes_a is None or nodes_b is None:
        return None
    decisions = [values_equal(x, y) for x in nodes_a for y in nodes_b]
    if True in decisions:
        return True
    return None if None in decisions else False


def scalar_candidates(form: Form) -> list[Node] | None:
    """The values a scalar may stand for: X, and X/100 too when written as a percent."""
    node = parse_cached(form[1])
    if node is None:
        return None
    if form[2]:
        return [node, ("div", node, ("num", Fraction(100), "100"))]
    return [node]


@lru_cache(maxsize=65536)
def parse_cached(text: str) -> Node | None:
    try:
        return parse_expression(text)
    except (LatexError, ValueError, ZeroDivisionError, RecursionError):
        return None


def values_equal(a: Node, b: Node) -> Decision:
    if contains_infinity(a) or contains_infinity(b):
        return a == b
    try:
        return rationals_equal(a, b, exact(a), exact(b))
    except (NotExact, OverflowError, ValueError, ZeroDivisionError):
        pass
    symbols = sorted(free_symbols(a) | free_symbols(b))
    if not symbols:
        return constants_equal(a, b)
    return functions_equal(lambda point: (numeric(a, point), numeric(b, point)), symbols)


def contains_infinity(node: Node) -> bool:
    if node[0] == "const":
        return node[1] == "inf"
    return any(contains_infinity(child) for child in node[1:] if isinstance(child, tuple))


def rationals_equal(a: Node, b: Node, x: Fraction, y: Fraction) -> bool:
    if x == y:
        return True
    return rounded_match(a, x, y) or rounded_match(b, y, x)


def rounded_match(written: Node, decimal: Fraction | complex, value: Fraction | complex) -> bool:
    """A decimal with >= `decimal_digits` significant digits stands for any value it is the
    rounding or the truncation (toward zero) of."""
    literal = decimal_literal(written)
    if literal is None or len(literal.replace(".", "").lstrip("0").lstrip("-")) < _decimal_digits.get():
        return False
    places = len(literal.split(".")[1])
    step = 10.0 ** -places
    gap = complex(value) - complex(decimal)
    if abs(gap) <= 0.5 * step * (1 + 1e-9):
        return True
    if gap.imag or complex(decimal).imag:
        return False
    beyond = gap.real if complex(decimal).real >= 0 else -gap.real  # truncation moves toward zero
    return 0 <= beyond < step * (1 - 1e-9)


def constants_equal(a: Node, b: Node) -> Decision:
    try:
        x, y = numeric(a, {}), numeric(b, {})
    except (OverflowError, ValueError, ZeroDivisionError, KeyError):
        return False if surely_huge(a) != surely_huge(b) else None
    if not (cmath.isfinite(x) and cmath.isfinite(y)):
        return None
    if decimal_literal(a) is not None or decimal_literal(b) is not None:
        return rounded_match(a, x, y) or rounded_match(b, y, x)
    return closeness(x, y)


HUGE_LOG10 = 400.0  # beyond any double: 10^400 is not a value a finite answer can equal


def surely_huge(node: Node, depth: int = 0) -> bool:
    """Whether a constant is a power tower past 10^400 (`10^{10^{10^{10}}}`), known without computing it:
    a base above 1 raised to an exponent that is itself huge or makes log10 exceed HUGE_LOG10."""
    if node[0] != "pow" or depth > 50 or free_symbols(node):
        return False
    try:
        base = numeric(node[1], {})
    except (OverflowError, ValueError, ZeroDivisionError, KeyError):
        return False
    if base.imag or not cmath.isfinite(base) or base.real <= 1:
        return False
    if surely_huge(node[2], depth + 1):
        return True
    try:
        exponent = numeric(node[2], {})
    except (OverflowError, ValueError, ZeroDivisionError, KeyError):
        return False
    return not exponent.imag and exponent.real * cmath.log10(base).real > HUGE_LOG10


def closeness(x: complex, y: complex) -> Decision:
    scale = max(1.0, abs(x), abs(y))
    if abs(x - y) <= CLOSE * scale:
        return True
    if abs(x - y) > APART * scale:
        return False
    return None


def sample_points(symbols: list[str], count: int = 5) -> list[dict[str, complex]]:
    """Fixed pseudo-random points; the last two are negative, so `|x|` and `x` differ."""
    rng = random.Random(",".join(symbols))
    signs = [1] * (count - 2) + [-1, -1]
    return [{name: complex(sign * rng.uniform(0.3, 1.9)) for name in symbols} for sign in signs]


def functions_equal(evaluate, symbols: list[str]) -> Decision:
    """Equal at every sample point -> True; clearly apart at one -> False."""
    decisions = []
    for point in sample_points(symbols):
        try:
            x, y = evaluate(point)
        except (OverflowError, ValueError, ZeroDivisionError, KeyError):
            continue
        if cmath.isfinite(x) and cmath.isfinite(y):
            decisions.append(closeness(x, y))
    if len(decisions) < 3:
        return None
    if False in decisions:
        return False
    return True if all(decisions) else None


def equations_equal(a: Form, b: Form) -> Decision:
    """`lhs = rhs` forms are the same equation when (lhs - rhs) are proportional."""
    nodes = [parse_cached(side) for side in (*a[1:], *b[1:])]
    if any(node is None for node in nodes):
        return None
    f = ("add", nodes[0], ("neg", nodes[1]))
    g = ("add", nodes[2], ("neg", nodes[3]))
    symbols = sorted(free_symbols(f) | free_symbols(g))
    values = []
    for point in sample_points(symbols or ["_"], 5):
        try:
            values.append((numeric(f, point), numeric(g, point)))
        except (OverflowError, ValueError, ZeroDivisionError, KeyError):
            continue
    if len(values) < 3:
        return None
    anchor = max(values, key=lambda pair: abs(pair[1]))
    if abs(anchor[1]) < 1e-12 or abs(anchor[0]) < 1e-12:
        return None
    ratio = anchor[0] / anchor[1]
    decisions = [closeness(x, ratio * y) for x, y in values]
    if False in decisions:
        return False
    return True if all(decisions) else None


def sequences_equal(a: Form, b: Form) -> Decision:
    if (a[1], a[3], len(a[2])) != (b[1], b[3], len(b[2])):
        return False
    return all_equal([(x, y) for x, y in zip(a[2], b[2])])


def matrices_equal(a: Form, b: Form) -> Decision:
    if [len(row) for row in a[1]] != [len(row) for row in b[1]]:
        return False
    return all_equal([(x, y) for row_a, row_b in zip(a[1], b[1]) for x, y in zip(row_a, row_b)])


def all_equal(pairs: list[tuple[str, str]]) -> Decision:
    undecided = False
    for x, y in pairs:
        decision = forms_equal(classify_normalized(x), classify_normalized(y))
        if decision is False:
            return False
        undecided = undecided or decision is None
    return None if undecided else True


def unordered_equal(a_items: list, b_items: list, compare) -> Decision:
    """Match every item of one side with a distinct equal item of the other (any order)."""
    if len(a_items) != len(b_items):
        return False
    if len(a_items) > MAX_ITEMS:
        return None
    unmatched = list(b_items)
    undecided = False
    for item in a_items:
        for index, other in enumerate(unmatched):
            decision = compare(item, other)
            if decision:
                del unmatched[index]
                break
            undecided = undecided or decision is None
        else:
            return None if undecided else False
    return True


def sets_equal(a: Form, b: Form) -> Decision:
    a_items, b_items = dedupe(a[1]), dedupe(b[1])
    return unordered_equal(a_items, b_items, lambda x, y: forms_equal(classify_normalized(x), classify_normalized(y)))


def dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item.replace(" ", "") for item in items))


def unions_equal(a: Form, b: Form) -> Decision:
    return unordered_equal(a[1], b[1], forms_equal)


COMPARE = {
    "scalar": scalars_equal,
    "equation": equations_equal,
    "seq": sequences_equal,
    "matrix": matrices_equal,
    "set": sets_equal,
    "union": unions_equal,
}
