"""Answer-string normalisation: strip what is presentation, keep what is value.

The rules a reader may dispute are documented here and in docs/verify.md:
- digits grouped in threes by `,` `{,}` `,\\!` or `\\,` are one number (`10,\\!080` = 10080);
  otherwise a comma separates answers (`12,34` is the list 12, 34);
- units are not part of the value: `\\text{ cm}^2`, `\\$`, `^\\circ`, trailing unit words;
  the unit stripped from the end is returned beside the value (`normalize_with_unit`) so that
  `compare.py` can tell `cm^2` from `cm^3`;
- `or` / `and` between answers separate them like a comma;
- a trailing `%` (or `\\%`, `percent`) is kept as a flag; see `compare.py` for the percent rule.
"""

from __future__ import annotations

import re

Rule = tuple[re.Pattern, str]


def rules(*pairs: tuple[str, str]) -> list[Rule]:
    return [(re.compile(pattern), replacement) for pattern, replacement in pairs]


PRESENTATION = rules(
    (r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]", ""),  # terminal escapes and control bytes
    ("\u2212|\u2013", "-"), ("\u00d7", r"\\times"), ("\u00b7|\u22c5", r"\\cdot"), ("\u221e", r"\\infty"),
    ("\u03c0", r"\\pi"),
    (r"\\(?:displaystyle|textstyle|limits)\b", ""),
    (r"\\\$|\$", ""),                                  # math delimiters and dollar signs (a unit)
    (r"\\[()\[\]]", ""),                                # \( \) \[ \] delimiters
    (r"\\(?:left|right)\s*\.", ""),                    # invisible \left. / \right.
    (r"\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])", ""),
    (r"(?<=\d),\\!\s*(?=\d{3}(?!\d))", ""),             # 10,\!080
    (r"(?<=\d)\{,\}(?=\d{3}(?!\d))", ""),               # 1{,}000
    (r"(?<=\d)\\,(?=\d{3}(?!\d))", ""),                 # 1\,000
    (r"(?<!\\)\\[!,;:> ]|\\q?quad\b|~", " "),                 # spacing commands
    (r"\\[dt]frac(?![a-zA-Z])", r"\\frac"),
    (r"\\(?:mbox|textbf|mathbf|mathrm|textrm|mathit|textit|boldsymbol|mathsf|textsf)(?![a-zA-Z])", r"\\text"),
    (r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°", ""),
    (r"\\%", "%"),
    (r"\\text\{\s*(?:or|and)\s*\}|\s+(?:or|and)\s+", ","),
    (r"\\(?:emptyset|varnothing)(?![a-zA-Z])", r"\\{\\}"),
)

UNIT_TEXT = re.compile(r"(?<=\S)\s*\\text\{\s*[a-zA-Z][a-zA-Z .,/]*\}(?:\^\{?\d\}?)?\s*$")
# a word's letters are taken whole (possessive `{2,}+`): with `\s*` between words, a long run of
# letters could otherwise be split into words in exponentially many ways when the match fails
UNIT_WORDS = re.compile(r"(?<=[\d}%)])\s+(?:[a-zA-Z]{2,}+\.?(?:/[a-zA-Z]+)?\s*)+(?:\^\{?\d\}?)?\s*$")
PERCENT_WORD = re.compile(r"\s*(?:percent|per\s*cent)\s*$", re.I)
TEXT_WRAPPER = re.compile(r"\\text\{([^{}]*)\}")
THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize(answer: str) -> str:
    """Presentation stripped: delimiters, `\\left`, spacing, `\\dfrac`, units, degree signs;
    `0.\\overline{3}`, `2 1/2` and the set of all reals rewritten into one spelling each."""
    return normalize_with_unit(answer)[0]


def normalize_with_unit(answer: str) -> tuple[str, str]:
    """`normalize(answer)` and the unit stripped from its end (`\\text{ cm}^2`; '' when none)."""
    text = answer.strip()
    for pattern, replacement in PRESENTATION:
        text = pattern.sub(replacement, text)
    text = PERCENT_WORD.sub("%", text)
    text, unit = split_unit(text)
    text = number_in_words(text)
    text = TEXT_WRAPPER.sub(lambda match: match.group(1), text)
    text, inner_unit = split_unit(" ".join(text.split()))
    text = ALL_REALS.sub(r"(-\\infty,\\infty)", text)
    text = OVERLINE.sub(repeating_decimal, text)
    text = MIXED_NUMBER.sub(mixed_number, text)
    text = " ".join(text.split()).strip(" ,;:").rstrip(".")
    return without_thousands(text), (inner_unit + unit).strip()


WHOLE_TEXT = re.compile(r"^\\text\{([^{}]*)\}$")
NUMBER_TOKEN = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")
ALL_REALS = re.compile(r"\\mathbb\s*\{?\s*R\s*\}?|\\R(?![a-zA-Z])|^(?:the set of )?all real numbers$|^all reals$",
                       re.I)
OVERLINE = re.compile(r"(-?)(\d*)\.(\d*)\\overline\s*(?:\{(\d+)\}|(\d))")
MIXED_NUMBER = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")


def number_in_words(text: str) -> str:
    """`\\text{there are 12 apples}` -> `12`: a whole-text answer with words around one number."""
    match = WHOLE_TEXT.match(text)
    if not match:
        return text
    inner = match.group(1)
    numbers = NUMBER_TOKEN.findall(inner)
    words = re.sub(NUMBER_TOKEN, " ", inner).split()
    if len(numbers) == 1 and words and all(word.isalpha() for word in words):
        return numbers[0]
    return text


def repeating_decimal(match: re.Match) -> str:
    """`0.1\\overline{6}` -> `(1/6)`: the exact value of a repeating decimal."""
    sign, whole, fixed, repeat = match.group(1), match.group(2) or "0", match.group(3), match.group(4) or match.group(5)
    numerator = int(whole + fixed + repeat) - int(whole + fixed)
    denominator = 10 ** len(fixed) * (10 ** len(repeat) - 1)
    return f"{sign}({numerator}/{denominator})"


def mixed_number(match: re.Match) -> str:
    """`2 1/2` (the whole answer) -> `(5/2)`; a plain-text mixed number is never a product."""
    sign, whole, top, bottom = match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))
    if bottom == 0:
        return match.group(0)
    return f"{sign}({whole * bottom + top}/{bottom})"


def split_unit(text: str) -> tuple[str, str]:
    """(`text` without its trailing units, the units): `27 \\text{ cm}^2` -> (`27`, ` \\text{ cm}^2`)."""
    value = text
    for pattern in (UNIT_TEXT, UNIT_WORDS):
        while True:
            stripped = pattern.sub("", value)
            if stripped == value or not stripped.strip():
                break
            value = stripped
    return value, text[len(value):]  # the patterns only cut from the end, so `value` is a prefix


UNIT_EXPONENT = re.compile(r"\^\s*\{?\s*(\d+)")
POWER_WORDS = re.compile(r"\b(square|sq|cubic)\b", re.I)


def unit_power(unit: str) -> int | None:
    """The power a unit states: `\\text{ cm}^2`, `square inches` -> 2; `cubic feet` -> 3; `cm` -> None."""
    if match := UNIT_EXPONENT.search(unit):
        return int(match.group(1))
    if match := POWER_WORDS.search(unit):
        return 3 if match.group(1).lower() == "cubic" else 2
    return None


def without_thousands(text: str) -> str:
    """`1,000,000` -> `1000000`; `12,34` stays a list."""
    return text.replace(",", "") if THOUSANDS.match(text) else text


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside (), [], {} (brackets of intervals may be unbalanced: `[1,2)`)."""
    parts, depth, start = [], 0, 0
    index = 0
    while index < len(text):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth <= 0 and text.startswith(separator, index):
            parts.append(text[start:index])
            start = index + len(separator)
            index = start
            continue
        index += 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def closing_index(text: str, open_at: int = 0) -> int:
    """Where the bracket opened at `open_at` closes (any bracket type closes any), or -1."""
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] in "([{":
            depth += 1
        elif text[index] in ")]}":
            depth -= 1
            if depth == 0:
                return index
    return -1
