"""The calculator tool of GSM8K-style solutions: `<<48/2=` is answered with `24>>`.

GSM8K's worked solutions mark each computation as `48/2 = <<48/2=24>>24`. A model trained on
such solutions can leave the arithmetic to a calculator, as in Cobbe et al. (2021): whenever
the generated text ends with `<<EXPRESSION=`, the decoder writes the exact result and the
closing `>>` itself, and the model goes on from there. Backends call `calculator_reply` on the
tail of each completion.

The expression is model output, so it is never given to `eval`: it is parsed with
`ast.parse` and only numbers, `+ - * /`, unary minus and parentheses are computed, exactly
(fractions), within size limits. Anything else gets no reply and the model writes on.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

CALL = re.compile(r"<<([0-9+\-*/(). ]{1,80})=$")
REPLY = re.compile(r"<<[^<>=]*=([^<>]*>>)")  # group 1: the calculator's part of a finished call
CALL_CHARS = 90  # a text tail this long holds any call CALL matches (`<<` + 80 + `=`)
MAX_DIGITS = 30  # largest operand or result magnitude, in digits
DECIMALS = 6  # non-terminating quotients are rounded to this many decimals

_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class _Refused(ValueError):
    """The expression is not plain arithmetic the calculator computes."""


def _value(node: ast.AST) -> Fraction:
    value = _compute(node)
    if abs(value) >= 10**MAX_DIGITS:
        raise _Refused("number too large")
    return value


def _compute(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise _Refused("division by zero")
        return _OPERATORS[type(node.op)](left, right)
    raise _Refused(f"not arithmetic: {type(node).__name__}")


def format_number(value: Fraction) -> str:
    """`24`, `28.5`, `-0.75`; a quotient that does not terminate is rounded to 6 decimals."""
    if value.denominator == 1:
        return str(value.numerator)
    scaled = round(abs(value) * 10**DECIMALS)
    whole, fraction = divmod(scaled, 10**DECIMALS)
    text = f"{whole}.{fraction:0{DECIMALS}d}".rstrip("0").rstrip(".")
    return text if value > 0 or text == "0" else "-" + text


def calculate(expression: str) -> str | None:
    """The exact value of `expression` (numbers, + - * /, parentheses), or None if it is not one."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return format_number(_value(tree.body))
    except (SyntaxError, _Refused, ValueError, ZeroDivisionError):
        return None


def reply_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the calculator's replies in a finished text (`24>>` in `<<48/2=24>>`)."""
    return [match.span(1) for match in REPLY.finditer(text)]


def calculator_reply(text: str) -> str | None:
    """What the calculator writes after `text`: `RESULT>>` when `text` ends with `<<EXPRESSION=`."""
    match = CALL.search(text[-CALL_CHARS:])
    if match is None:
        return None
    result = calculate(match.group(1))
    return None if result is None else result + ">>"
