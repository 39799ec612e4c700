"""A small, bounded parser for the LaTeX math that final answers are written in.

It turns `2\\sqrt{5}`, `\\frac{11+9a}{20}`, `-2 + 7i`, `\\sin^2 x` into a tree of tuples that
two evaluators read: `exact` gives a `Fraction` for purely rational expressions (integers,
decimals, fractions, small integer powers), `numeric` gives a complex number at a point
(values for the free variables). Anything outside the grammar raises `LatexError`, and the
caller hands the pair to math-verify instead of guessing. Never `eval`: the tree is data.

Conventions: single letters are variables (`ab` is `a*b`), `i` is the imaginary unit,
`e` is Euler's number, `\\pi` is pi; an integer followed directly by a numeric `\\frac`
is a mixed number (`1\\frac{4}{5}` = 9/5).
"""

from __future__ import annotations

import cmath
import math
import re
from fractions import Fraction
from typing import Callable

Node = tuple  # ("num", Fraction, text) | ("sym", name) | ("const", name) | (op, *children)


class LatexError(ValueError):
    """The text is outside the grammar (or too deep, or too large): let math-verify decide."""


MAX_DEPTH = 60
MAX_EXACT_EXPONENT = 512
MAX_EXACT_BITS = 4096

TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<cmd>\\[a-zA-Z]+)"
    r"|(?P<letter>[a-zA-Z])"
    r"|(?P<op>[-+*/^_()\[\]{}|!,=])"
    r")"
)

FUNCTIONS: dict[str, Callable[[complex], complex]] = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan,
    "cot": lambda z: 1 / cmath.tan(z), "sec": lambda z: 1 / cmath.cos(z), "csc": lambda z: 1 / cmath.sin(z),
    "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
    "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh,
    "ln": cmath.log, "log": cmath.log, "exp": cmath.exp,
}
TIMES = {"\\cdot", "\\times", "*"}
DIVIDE = {"\\div", "/"}
GREEK = {
    "alpha", "beta", "gamma", "delta", "theta", "phi", "varphi", "lambda", "mu", "sigma", "omega", "rho", "tau",
    "psi", "chi", "eta", "kappa", "nu", "xi", "zeta", "epsilon", "varepsilon",
}


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise LatexError(f"unexpected character {text[pos:pos + 1]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class Parser:
    """Recursive descent over the token list, with a depth limit (no stack overflow on `{{{{...`)."""

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    # -- helpers
    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise LatexError("unexpected end of expression")
        self.pos += 1
        return token

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == value:
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise LatexError(f"expected {value!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LatexError("expression nested too deeply")

    # -- grammar
    def parse(self) -> Node:
        node = self.expression()
        if self.peek() is not None:
            raise LatexError(f"unexpected {self.peek()[1]!r}")
        return node

    def expression(self) -> Node:
        self.enter()
        node = self.term()
        while self.peek() is not None and self.peek()[1] in "+-":
            op = self.take()[1]
            right = self.term()
            node = ("add", node, right) if op == "+" else ("add", node, ("neg", right))
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.signed()
        while True:
            token = self.peek()
            if token is None:
                return node
            if token[1] in TIMES:
                self.take()
                node = ("mul", node, self.signed())
            elif token[1] in DIVIDE:
                self.take()
                node = ("div", node, self.signed())
            elif self.starts_factor(token):
                node = ("mul", node, self.power())
            else:
                return node

    def signed(self) -> Node:
        if self.accept("-"):
            return ("neg", self.signed())
        if self.accept("+"):
            return self.signed()
        return self.power()

    def starts_factor(self, token: tuple[str, str]) -> bool:
        kind, value = token
        if kind in ("num", "letter"):
            return True
        if kind == "cmd":
            return value not in TIMES and value not in DIVIDE and value != "\\pm"
        return value in ("(", "{", "[")

    def power(self) -> Node:
        self.enter()
        base = self.postfix(self.atom())
        if self.accept("^"):
            exponent = self.group_or_token()
            base = ("pow", base, exponent)
            base = self.postfix(base)
        self.depth -= 1
        return base

    def postfix(self, node: Node) -> Node:
        while self.accept("!"):
            node = ("fact", node)
        return node

    def group_or_token(self) -> Node:
        """A `{...}` group, or a single token (`x^2`, `\\frac 34`)."""
        token = self.peek()
        if token is None:
            raise LatexError("missing argument")
        if token[1] == "{":
            return self.braced()
        if token[0] == "num":
            self.take()
            digits = token[1]
            if len(digits) > 1 and "." not in digits:  # `\frac 34`: one digit per argument
                self.tokens[self.pos - 1] = ("num", digits[0])
                self.tokens.insert(self.pos, ("num", digits[1:]))
                digits = digits[0]
            return number(digits)
        if token[1] == "-":
            self.take()
            return ("neg", self.group_or_token())
        return self.atom()

    def braced(self) -> Node:
        self.expect("{")
        node = self.expression()
        self.expect("}")
        return node

    def atom(self) -> Node:
        self.enter()
        kind, value = self.take()
        if kind == "num":
            node = self.mixed_number(number(value))
        elif kind == "letter":
            node = self.letter(value)
        elif kind == "cmd":
            node = self.command(value[1:])
        elif value == "(":
            node = self.expression()
            self.expect(")")
        elif value == "{":
            node = self.expression()
            self.expect("}")
        elif value == "|":
            node = ("abs", self.expression())
            self.expect("|")
        else:
            raise LatexError(f"unexpected {value!r}")
        self.depth -= 1
        return node

    def mixed_number(self, whole: Node) -> Node:
        """`1\\frac{4}{5}` is one and four fifths when both parts are plain integers."""
        token = self.peek()
        if token != ("cmd", "\\frac") or not is_integer_literal(whole):
            return whole
        saved = self.pos
        self.take()
        top, bottom = self.group_or_token(), self.group_or_token()
        if is_integer_literal(top) and is_integer_literal(bottom):
            if bottom[1] == 0:
                raise LatexError("division by zero")
            return ("num", whole[1] + top[1] / bottom[1], "mixed")
        self.pos = saved
        return whole

    def letter(self, value: str) -> Node:
        node: Node = ("const", value) if value in ("i", "e") else ("sym", value)
        if self.accept("_"):
            sub = self.take()[1] if self.peek() and self.peek()[1] != "{" else None
            if sub is None:
                self.expect("{")
                parts = []
                while self.peek() is not None and self.peek()[1] != "}":
                    parts.append(self.take()[1])
                self.expect("}")
                sub = "".join(parts)
            node = ("sym", f"{value}_{sub}")
        return node

    def command(self, name: str) -> Node:
        if name == "frac":
            return ("div", self.group_or_token(), self.group_or_token())
        if name == "sqrt":
            index: Node | None = None
            if self.accept("["):
                index = self.expression()
                self.expect("]")
            radicand = self.group_or_token()
            return ("pow", radicand, ("div", number("1"), index)) if index else ("sqrt", radicand)
        if name == "pi":
            return ("const", "pi")
        if name == "infty":
            return ("const", "inf")
        if name in GREEK:
            return ("sym", name)
        if name in FUNCTIONS:
            return self.function(name)
        if name in ("binom", "dbinom", "tbinom"):
            return ("binom", self.group_or_token(), self.group_or_token())
        raise LatexError(f"unsupported command \\{name}")

    def function(self, name: str) -> Node:
        """`\\sin x`, `\\sin^2 x`, `\\log_2 8`, `\\ln(3x)`: the argument without parentheses runs to the next operator."""
        power = base = None
        if self.accept("^"):
            power = self.group_or_token()
        if name == "log" and self.accept("_"):
            base = self.group_or_token()
        token = self.peek()
        if token is not None and token[1] in ("(", "{"):
            argument = self.atom()
        else:
            argument = self.power()
            while self.peek() is not None and self.peek()[0] in ("num", "letter"):
                argument = ("mul", argument, self.power())
        node: Node = ("call", name, argument)
        if base is not None:
            node = ("div", node, ("call", "ln", base))
        return ("pow", node, power) if power is not None else node


def number(text: str) -> Node:
    return ("num", Fraction(text), text)


def is_integer_literal(node: Node) -> bool:
    return node[0] == "num" and isinstance(node[2], str) and node[2].isdigit()


def parse_expression(text: str) -> Node:
    return Parser(text).parse()


def free_symbols(node: Node) -> set[str]:
    if node[0] == "sym":
        return {node[1]}
    if node[0] in ("num", "const"):
        return set()
    return set().union(*(free_symbols(child) for child in node[1:] if isinstance(child, tuple)))


def decimal_literal(node: Node) -> str | None:
    """The digits of a node that is one plain decimal literal (`-0.25` -> '0.25'), else None."""
    if node[0] == "neg":
        return decimal_literal(node[1])
    if node[0] == "num" and isinstance(node[2], str) and "." in node[2]:
        return node[2]
    return None


# ---------------------------------------------------------------- evaluation


class NotExact(Exception):
    """The expression has no exact rational value we can compute cheaply."""


def exact(node: Node) -> Fraction:
    kind = node[0]
    if kind == "num":
        if node[1] is None:
            raise NotExact("division by zero")
        return node[1]
    if kind == "neg":
        return -exact(node[1])
    if kind == "add":
        return exact(node[1]) + exact(node[2])
    if kind == "mul":
        return exact(node[1]) * exact(node[2])
    if kind == "div":
        top, bottom = exact(node[1]), exact(node[2])
        if bottom == 0:
            raise NotExact("division by zero")
        return top / bottom
    if kind == "pow":
        return exact_power(exact(node[1]), exact(node[2]))
    if kind == "binom":
        return Fraction(exact_binomial(exact(node[1]), exact(node[2])))
    raise NotExact(kind)


def exact_binomial(n: Fraction, k: Fraction) -> int:
    if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= 10_000:
        raise NotExact("binomial")
    return math.comb(int(n), int(k)) if k >= 0 else 0


def exact_power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1 or abs(exponent) > MAX_EXACT_EXPONENT:
        raise NotExact("power")
    bits = max(abs(base.numerator), abs(base.denominator)).bit_length() * abs(int(exponent))
    if bits > MAX_EXACT_BITS or (base == 0 and exponent < 0):
        raise NotExact("power")
    return base ** int(exponent)


CONSTANTS = {"pi": complex(math.pi), "e": complex(math.e), "i": 1j, "inf": complex(math.inf)}


def numeric(node: Node, point: dict[str, complex]) -> complex:
    """The value at `point`; raises OverflowError/ValueError/ZeroDivisionError on trouble."""
    kind = node[0]
    if kind == "num":
        if node[1] is None:
            raise ZeroDivisionError
        return complex(node[1])
    if kind == "sym":
        return point[node[1]]
    if kind == "const":
        return CONSTANTS[node[1]]
    if kind == "neg":
        return -numeric(node[1], point)
    if kind == "add":
        return numeric(node[1], point) + numeric(node[2], point)
    if kind == "mul":
        return numeric(node[1], point) * numeric(node[2], point)
    if kind == "div":
        return numeric(node[1], point) / numeric(node[2], point)
    if kind == "pow":
        return numeric_power(numeric(node[1], point), numeric(node[2], point))
    if kind == "sqrt":
        return cmath.sqrt(numeric(node[1], point))
    if kind == "abs":
        return complex(abs(numeric(node[1], point)))
    if kind == "call":
        return FUNCTIONS[node[1]](numeric(node[2], point))
    if kind == "binom":
        n, k = numeric(node[1], point), numeric(node[2], point)
        if n.imag or k.imag or n.real > 170 or k.real < 0 or n.real - k.real < 0:
            raise ValueError("binomial")
        return complex(math.gamma(n.real + 1) / (math.gamma(k.real + 1) * math.gamma(n.real - k.real + 1)))
    if kind == "fact":
        value = numeric(node[1], point)
        if value.imag or value.real > 170:
            raise ValueError("factorial")
        return complex(math.gamma(value.real + 1))
    raise ValueError(kind)


def numeric_power(base: complex, exponent: complex) -> complex:
    if abs(exponent) > 1e4 or (abs(base) > 1e6 and abs(exponent) > 50):
        raise OverflowError("power too large")
    if exponent.imag == 0 and exponent.real == int(exponent.real) and base.imag == 0:
        return complex(base.real ** int(exponent.real))  # real result for real base, integer power
    if base.imag == 0 and base.real > 0 and exponent.imag == 0:
        return complex(base.real ** exponent.real)
    return base ** exponent

