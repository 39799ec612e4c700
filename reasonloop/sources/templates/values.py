"""Values a template works with, number words, and how values are written out.

Numbers are exact: integers, `Fraction`s (integer `/` gives a Fraction when it does not
divide evenly; decimal literals and decimal ranges are exact decimals), and `Labeled`
values — a number that is written as a word or phrase in the text ("twice" = 2,
"half" = 1/2, ("d20", 20)). Floats appear only where a helper needs them (fractional
powers), so conditions such as `is_int(n * 0.3)` never fail on rounding noise.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

Number = int | Fraction | float


class Labeled:
    """A number with the text it is written as: `("twice", 2)`. Indexing gives (text, value)."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any) -> None:
        self.text = text
        self.value = value

    def __getitem__(self, index: int | slice) -> Any:
        return (self.text, self.value)[index]

    def __len__(self) -> int:
        return 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labeled) and (self.text, self.value) == (other.text, other.value)

    def __hash__(self) -> int:
        return hash((self.text, self.value))

    def __repr__(self) -> str:
        return f"Labeled({self.text!r}, {self.value!r})"


def unwrap(value: Any) -> Any:
    """The number behind a Labeled value (anything else unchanged)."""
    return value.value if value.__class__ is Labeled else value


def as_labeled(value: Any) -> Any:
    """A `(text, number)` pair drawn from a list becomes a Labeled value."""
    if value.__class__ is tuple and len(value) == 2 and is_number(value[1]) and isinstance(value[0], (str, int)):
        return Labeled(str(value[0]), value[1])
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, Fraction, float)) and not isinstance(value, bool)


def exact(value: float | str) -> Fraction | int:
    """A decimal literal as an exact number: 0.1 -> 1/10, 2.0 -> 2."""
    result = Fraction(str(value)) if isinstance(value, float) else Fraction(value)
    return int(result) if result.denominator == 1 else result


def normalize(value: Any) -> Any:
    """Whole Fractions become ints, so `12/4` renders and compares as 3."""
    if value.__class__ is Fraction and value._denominator == 1:
        return value._numerator
    return value


# ------------------------------------------------------------------- writing values


def terminating_decimal(value: Fraction) -> str | None:
    """`9/4` -> '2.25'; None when the decimal does not terminate (1/3)."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return "-" + text if value < 0 else text


def format_float(value: float, places: int = 6) -> str:
    rounded = round(value, places)
    if rounded == int(rounded):
        return str(int(rounded))
    return repr(rounded)


def format_decimal(value: Number) -> str:
    """A number in decimal notation (non-terminating fractions rounded to 6 places)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        return terminating_decimal(value) or format_float(float(value))
    return format_float(value)


def format_fraction(value: Number) -> str:
    """Fraction notation: 1/20; whole numbers without a denominator."""
    if isinstance(value, float):
        value = Fraction(value).limit_denominator(10**6)
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def format_mixed(value: Number) -> str:
    """A mixed number: 7/2 -> '3 1/2'."""
    value = Fraction(unwrap(value)) if not isinstance(value, float) else Fraction(value).limit_denominator(10**6)
    whole, rest = divmod(abs(value.numerator), value.denominator)
    sign = "-" if value < 0 else ""
    if rest == 0:
        return f"{sign}{whole}"
    if whole == 0:
        return f"{sign}{rest}/{value.denominator}"
    return f"{sign}{whole} {rest}/{value.denominator}"


def format_text(value: Any) -> str:
    """How a value is written into question or solution text."""
    if value.__class__ is str:
        return value
    if value.__class__ is int:
        return str(value)
    if value.__class__ is Labeled:
        return value.text
    if is_number(value):
        return format_decimal(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(format_text(item) for item in value)
    return str(value)


def format_calc(value: Any) -> str:
    """How a value is written inside a `<<...>>` calculator annotation: always a number."""
    value = unwrap(value)
    if isinstance(value, Fraction) and value.denominator != 1 and terminating_decimal(value) is None:
        return f"({value.numerator}/{value.denominator})"
    return format_text(value)


def format_answer(value: Any) -> str:
    """The final answer as a string: '145', '2.5' (never '145.0')."""
    return format_decimal(unwrap(value))


def jsonable(value: Any) -> Any:
    """A JSON-friendly copy of a variable's value for `Problem.meta['vars']`."""
    if value.__class__ is Labeled:
        return [value.text, jsonable(value.value)]
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


# ------------------------------------------------------------------- number words

UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS: dict[str, int] = {word: value for value, word in enumerate(UNITS)}
NUMBER_WORDS.update({word: 20 + 10 * index for index, word in enumerate(TENS)})
NUMBER_WORDS.update({"a": 1, "an": 1, "dozen": 12})
MULTIPLIER_WORDS = {"once": 1, "twice": 2, "thrice": 3, "double": 2, "triple": 3, "quadruple": 4,
                    "quintuple": 5}
DENOMINATOR_WORDS = {"half": 2, "halves": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6,
                     "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "twelfth": 12, "sixteenth": 16,
                     "twentieth": 20, "hundredth": 100}
NUMERAL = re.compile(r"^[-+]?(\d[\d,]*)?(\.\d+)?$")
MIXED = re.compile(r"^(?:(\d+)\s+)?(\d+)\s*/\s*(\d+)$")


def number_word(text: str) -> int | None:
    """'forty-two' -> 42, 'three hundred' -> 300, 'a' -> 1."""
    total, current = 0, None
    for word in text.replace("-", " ").split():
        if word in NUMBER_WORDS:
            current = (current or 0) + NUMBER_WORDS[word]
        elif word == "hundred" and current is not None:
            current *= 100
        elif word == "thousand" and current is not None:
            total, current = total + current * 1000, None
        elif word != "and":
            return None
    if current is None and total == 0:
        return None
    return total + (current or 0)


def fraction_words(text: str) -> Fraction | None:
    """'two-thirds' -> 2/3, 'a quarter' -> 1/4, 'half' -> 1/2, 'three quarters' -> 3/4."""
    words = text.replace("-", " ").split()
    if not words:
        return None
    last = words[-1]
    singular = last[:-1] if last.endswith("s") and last[:-1] in DENOMINATOR_WORDS else last
    if singular not in DENOMINATOR_WORDS:
        return None
    numerator = number_word(" ".join(words[:-1])) if words[:-1] else 1
    return None if numerator is None else Fraction(numerator, DENOMINATOR_WORDS[singular])


def parse_number_text(text: str) -> Number | None:
    """The number a default written in the text stands for, or None if it is not a number.

    Handles numerals ('1,200', '0.25', '$5', '20%'), fractions ('1/2', '3 1/2'), number
    words ('Twenty', 'forty-two'), multipliers ('twice', 'three times', 'double') and
    fraction words ('half', 'a third', 'two-thirds', 'three quarters').
    """
    cleaned = text.strip().lower().strip("$€£¥₹%").strip()
    if not cleaned:
        return None
    if NUMERAL.match(cleaned) and any(ch.isdigit() for ch in cleaned):
        return normalize(exact(cleaned.replace(",", "")))
    mixed = MIXED.match(cleaned)
    if mixed:
        whole = int(mixed.group(1) or 0)
        return normalize(whole + Fraction(int(mixed.group(2)), int(mixed.group(3))))
    if cleaned in MULTIPLIER_WORDS:
        return MULTIPLIER_WORDS[cleaned]
    if cleaned.endswith(" times"):
        return parse_number_text(cleaned[: -len(" times")])
    word = number_word(cleaned)
    if word is not None:
        return word
    fraction = fraction_words(cleaned)
    return normalize(fraction) if fraction is not None else None
