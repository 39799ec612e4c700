"""A restricted expression evaluator for template files: parse once, run many times.

Template expressions are data from outside the project, so they are never passed to
`eval`/`exec`. `compile_expression` parses the text with `ast.parse(mode="eval")`,
checks every node against a whitelist and turns the tree into nested Python closures,
folding constant parts (`range(10, 500, 10)`, pools) once. Calling the result with a
dict of variables evaluates it.

Allowed: numbers and strings, variables, arithmetic (`+ - * / // % **`), comparisons
(chained too), `and`/`or`/`not`, `a if c else b`, indexing and slicing, list and tuple
displays, and calls of the registered helpers by exact name (`np.arange` is one helper
name, not attribute access). Refused with a clear error: any other attribute access,
imports, dunder names, lambdas, comprehensions, f-strings, walrus, and — when run —
powers, ranges and repetitions beyond fixed limits.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Collection

from reasonloop.sources.templates.errors import EvalError
from reasonloop.sources.templates.helpers import HELPERS, MAX_ITEMS, MAX_TEXT, check_size
from reasonloop.sources.templates.pools import POOLS
from reasonloop.sources.templates.values import Labeled, exact, normalize

Env = dict[str, Any]
Node = Callable[[Env], Any]

MAX_EXPONENT = 10_000
MAX_POWER_BITS = 4_096
MAX_EXPRESSION_CHARS = 5_000
MAX_NESTING = 100  # AST depth: keeps compiling and running far from Python's recursion limit


@dataclass(frozen=True)
class Compiled:
    """A compiled expression: `run(env)` evaluates it; `names` are the variables it reads."""

    source: str
    run: Node
    names: frozenset[str]
    constant: bool
    tree: ast.expr

    key: str = ""  # canonical spelling: `n*q` and `n * q` share a key (set from the tree)
    name: str | None = None  # the variable, when the whole expression is one variable

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ast.unparse(self.tree))
        if isinstance(self.tree, ast.Name) and self.tree.id in self.names:
            object.__setattr__(self, "name", self.tree.id)

    def __call__(self, env: Env) -> Any:
        return self.run(env)


# ------------------------------------------------------------------- operators


def _plain(value: Any) -> Any:
    return value.value if value.__class__ is Labeled else value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, range))


def op_add(a: Any, b: Any) -> Any:
    if a.__class__ is int and b.__class__ is int:
        return a + b
    a, b = _plain(a), _plain(b)
    if _is_sequence(a) and _is_sequence(b):
        return check_size(list(a) + list(b))
    if isinstance(a, str) and isinstance(b, str):
        return check_size(a + b, MAX_TEXT)
    return normalize(a + b)


def op_sub(a: Any, b: Any) -> Any:
    if a.__class__ is int and b.__class__ is int:
        return a - b
    return normalize(_plain(a) - _plain(b))


def op_mul(a: Any, b: Any) -> Any:
    if a.__class__ is int and b.__class__ is int:
        return a * b
    a, b = _plain(a), _plain(b)
    if _is_sequence(a) or _is_sequence(b) or isinstance(a, str) or isinstance(b, str):
        items, times = (a, b) if not isinstance(a, int) else (b, a)
        if not isinstance(times, int):
            raise EvalError("a list or text can only be repeated a whole number of times", str(times))
        limit = MAX_TEXT if isinstance(items, str) else MAX_ITEMS
        if len(items) * max(times, 0) > limit:
            raise EvalError(f"repetition too large (more than {limit:,} items)")
        return items * times if not isinstance(items, range) else list(items) * times
    return normalize(a * b)


def op_div(a: Any, b: Any) -> Any:
    a, b = _plain(a), _plain(b)
    if a.__class__ is int and b.__class__ is int:
        quotient, remainder = divmod(a, b)  # ZeroDivisionError propagates: the caller rejects the draw
        return quotient if remainder == 0 else Fraction(a, b)
    return normalize(a / b)


def op_floordiv(a: Any, b: Any) -> Any:
    if a.__class__ is int and b.__class__ is int:
        return a // b
    return normalize(_plain(a) // _plain(b))


def op_mod(a: Any, b: Any) -> Any:
    if a.__class__ is int and b.__class__ is int:
        return a % b
    a, b = _plain(a), _plain(b)
    if isinstance(a, str):
        raise EvalError("%-formatting of text is not allowed")
    return normalize(a % b)


def op_pow(a: Any, b: Any) -> Any:
    a, b = _plain(a), _plain(b)
    if isinstance(b, Fraction) and b.denominator == 1:
        b = int(b)
    if isinstance(b, int) and not isinstance(b, bool):
        if abs(b) > MAX_EXPONENT:
            raise EvalError(f"power too large (exponent {b} beyond {MAX_EXPONENT})")
        magnitude = abs(Fraction(a)) if not isinstance(a, float) else abs(a)
        if magnitude > 1 and abs(b) * max(int(magnitude).bit_length(), 1) > MAX_POWER_BITS:
            raise EvalError(f"power too large (result beyond {MAX_POWER_BITS} bits)")
        if isinstance(a, int) and b < 0:
            return normalize(Fraction(a) ** b)
        return normalize(a**b)
    if abs(float(a)) > 2.0**64 or abs(float(b)) > MAX_EXPONENT:
        raise EvalError("power too large")
    result = float(a) ** float(b)
    if isinstance(result, complex):
        raise EvalError("power of a negative number to a fractional exponent")
    return result


BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: op_add, ast.Sub: op_sub, ast.Mult: op_mul, ast.Div: op_div,
    ast.FloorDiv: op_floordiv, ast.Mod: op_mod, ast.Pow: op_pow,
}


INT_FAST_PATH: dict[type, Callable[[int, int], int]] = {
    ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
}


def _contains(container: Any, item: Any) -> bool:
    container = _plain(container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return item in container or _plain(item) in [_plain(x) for x in container]


COMPARE_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: _plain(a) == _plain(b),
    ast.NotEq: lambda a, b: _plain(a) != _plain(b),
    ast.Lt: lambda a, b: _plain(a) < _plain(b),
    ast.LtE: lambda a, b: _plain(a) <= _plain(b),
    ast.Gt: lambda a, b: _plain(a) > _plain(b),
    ast.GtE: lambda a, b: _plain(a) >= _plain(b),
    ast.In: lambda a, b: _contains(b, a),
    ast.NotIn: lambda a, b: not _contains(b, a),
}

REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Dict: "dict displays are not allowed",
    ast.Set: "set displays are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


# ------------------------------------------------------------------- compiler


def dotted_name(node: ast.expr) -> str | None:
    """`np.random.randint` for an Attribute chain over a Name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Compiler:
    def __init__(self, variables: Collection[str], unknown: Callable[[str], str]) -> None:
        self.variables = variables
        self.unknown = unknown
        self.names: set[str] = set()

    def compile(self, node: ast.expr) -> tuple[Node, bool]:
        """A closure for the node and whether it is a constant (no variables, no randomness)."""
        refused = REFUSED_NODES.get(type(node))
        if refused:
            raise EvalError(refused, ast.unparse(node)[:60])
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise EvalError(f"{type(node).__name__} expressions are not allowed", ast.unparse(node)[:60])
        return method(node)

    def constant(self, value: Any) -> tuple[Node, bool]:
        return (lambda env: value), True

    def fold(self, run: Node, node: ast.expr) -> tuple[Node, bool]:
        try:
            value = run({})
        except ZeroDivisionError:
            raise EvalError("division by zero", ast.unparse(node)[:60]) from None
        except EvalError as exc:
            raise EvalError(str(exc), exc.token or ast.unparse(node)[:60]) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise EvalError(f"cannot evaluate: {exc}", ast.unparse(node)[:60]) from None
        return self.constant(value)

    def visit_Constant(self, node: ast.Constant) -> tuple[Node, bool]:
        value = node.value
        if isinstance(value, bool) or value is None or isinstance(value, int):
            return self.constant(value)
        if isinstance(value, float):
            return self.constant(exact(value))
        if isinstance(value, str):
            return self.constant(check_size(value, MAX_TEXT))
        raise EvalError(f"{type(value).__name__} literals are not allowed", repr(value)[:60])

    def visit_Name(self, node: ast.Name) -> tuple[Node, bool]:
        name = node.id
        if name.startswith("__"):
            raise EvalError("dunder names are not allowed", name)
        if name in self.variables:
            self.names.add(name)
            return (lambda env: env[name]), False
        if name in POOLS:
            return self.constant(POOLS[name])
        if name in HELPERS:
            raise EvalError(f"helper {name!r} must be called", name)
        raise EvalError(self.unknown(name), name)

    def visit_Attribute(self, node: ast.Attribute) -> tuple[Node, bool]:
        text = ast.unparse(node)
        if any(part.startswith("__") for part in text.split(".")) or "__" in node.attr:
            raise EvalError("dunder names are not allowed", text)
        raise EvalError("attribute access is not allowed (only helper names such as np.arange)", text)

    def visit_Call(self, node: ast.Call) -> tuple[Node, bool]:
        name = dotted_name(node.func)
        if name is None:
            raise EvalError("only helper functions can be called", ast.unparse(node.func)[:60])
        if any(part.startswith("__") for part in name.split(".")):
            raise EvalError("dunder names are not allowed", name)
        helper = HELPERS.get(name)
        if helper is None:
            if name in ("import", "exec", "eval", "open", "getattr", "compile"):
                raise EvalError(f"{name} is not allowed", name)
            raise EvalError(f"unknown helper {name!r}", name)
        args = [self.compile(arg) for arg in node.args]
        keywords = []
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg.startswith("_"):
                raise EvalError("**keyword arguments are not allowed", ast.unparse(keyword)[:60])
            keywords.append((keyword.arg, self.compile(keyword.value)))
        arg_runs = [run for run, _ in args]
        keyword_runs = [(key, run) for key, (run, _) in keywords]
        function = helper.function

        if helper.random:
            def run(env: Env) -> Any:
                kwargs = {key: value(env) for key, value in keyword_runs}
                return function(env[RNG_KEY], *[arg(env) for arg in arg_runs], **kwargs)
            return run, False

        if not keyword_runs:
            if len(arg_runs) == 1:
                (only,) = arg_runs
                run = lambda env: function(only(env))  # noqa: E731
            elif len(arg_runs) == 2:
                first, second = arg_runs
                run = lambda env: function(first(env), second(env))  # noqa: E731
            else:
                run = lambda env: function(*[arg(env) for arg in arg_runs])  # noqa: E731
        else:
            def run(env: Env) -> Any:
                return function(*[arg(env) for arg in arg_runs], **{key: value(env) for key, value in keyword_runs})
        if all(constant for _, constant in args) and all(constant for _, (_, constant) in keywords):
            return self.fold(run, node)
        return run, False

    def visit_BinOp(self, node: ast.BinOp) -> tuple[Node, bool]:
        function = BINARY_OPS.get(type(node.op))
        if function is None:
            raise EvalError(f"operator {type(node.op).__name__} is not allowed", ast.unparse(node)[:60])
        (left, left_constant), (right, right_constant) = self.compile(node.left), self.compile(node.right)
        int_op = INT_FAST_PATH.get(type(node.op))
        if int_op is None:
            run = lambda env: function(left(env), right(env))  # noqa: E731
        else:
            def run(env: Env) -> Any:  # ints are by far the common case: skip the generic operator
                a, b = left(env), right(env)
                if a.__class__ is int and b.__class__ is int:
                    return int_op(a, b)
                return function(a, b)
        return self.fold(run, node) if left_constant and right_constant else (run, False)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> tuple[Node, bool]:
        operand, constant = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            run = lambda env: -_plain(operand(env))  # noqa: E731
        elif isinstance(node.op, ast.UAdd):
            run = lambda env: +_plain(operand(env))  # noqa: E731
        elif isinstance(node.op, ast.Not):
            run = lambda env: not _plain(operand(env))  # noqa: E731
        else:
            raise EvalError(f"operator {type(node.op).__name__} is not allowed", ast.unparse(node)[:60])
        return self.fold(run, node) if constant else (run, False)

    def visit_BoolOp(self, node: ast.BoolOp) -> tuple[Node, bool]:
        parts = [self.compile(value) for value in node.values]
        runs = [run for run, _ in parts]
        if isinstance(node.op, ast.And):
            def run(env: Env) -> Any:
                value = True
                for part in runs:
                    value = part(env)
                    if not _plain(value):
                        return value
                return value
        else:
            def run(env: Env) -> Any:
                value = False
                for part in runs:
                    value = part(env)
                    if _plain(value):
                        return value
                return value
        return self.fold(run, node) if all(c for _, c in parts) else (run, False)

    def visit_Compare(self, node: ast.Compare) -> tuple[Node, bool]:
        operands = [self.compile(node.left)] + [self.compile(comparator) for comparator in node.comparators]
        functions = []
        for op in node.ops:
            function = COMPARE_OPS.get(type(op))
            if function is None:
                raise EvalError(f"comparison {type(op).__name__} is not allowed", ast.unparse(node)[:60])
            functions.append(function)
        runs = [run for run, _ in operands]
        if len(functions) == 1:
            (compare,), (left, right) = functions, runs
            run = lambda env: compare(left(env), right(env))  # noqa: E731
        else:
            def run(env: Env) -> bool:
                left = runs[0](env)
                for compare, right_run in zip(functions, runs[1:]):
                    right = right_run(env)
                    if not compare(left, right):
                        return False
                    left = right
                return True
        return self.fold(run, node) if all(c for _, c in operands) else (run, False)

    def visit_IfExp(self, node: ast.IfExp) -> tuple[Node, bool]:
        (test, c1), (body, c2), (orelse, c3) = (self.compile(node.test), self.compile(node.body),
                                                self.compile(node.orelse))
        run = lambda env: body(env) if _plain(test(env)) else orelse(env)  # noqa: E731
        return self.fold(run, node) if c1 and c2 and c3 else (run, False)

    def visit_Subscript(self, node: ast.Subscript) -> tuple[Node, bool]:
        value, value_constant = self.compile(node.value)
        if isinstance(node.slice, ast.Slice):
            bounds = [self.compile(part) if part is not None else self.constant(None)
                      for part in (node.slice.lower, node.slice.upper, node.slice.step)]
            (lower, _), (upper, _), (step, _) = bounds

            def run(env: Env) -> Any:
                return index_into(value(env), slice(_index(lower(env)), _index(upper(env)), _index(step(env))))
            constant = value_constant and all(c for _, c in bounds)
        else:
            (index, index_constant) = self.compile(node.slice)
            run = lambda env: index_into(value(env), _index(index(env)))  # noqa: E731
            constant = value_constant and index_constant
        return self.fold(run, node) if constant else (run, False)

    def visit_List(self, node: ast.List) -> tuple[Node, bool]:
        items = [self.compile(item) for item in node.elts]
        runs = [run for run, _ in items]
        run = lambda env: [item(env) for item in runs]  # noqa: E731
        return self.fold(run, node) if all(c for _, c in items) else (run, False)

    def visit_Tuple(self, node: ast.Tuple) -> tuple[Node, bool]:
        items = [self.compile(item) for item in node.elts]
        runs = [run for run, _ in items]
        run = lambda env: tuple(item(env) for item in runs)  # noqa: E731
        return self.fold(run, node) if all(c for _, c in items) else (run, False)


def _index(value: Any) -> Any:
    value = _plain(value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise EvalError("an index must be a whole number", str(value))


def index_into(container: Any, index: Any) -> Any:
    if not isinstance(container, (list, tuple, range, str, Labeled)):
        raise EvalError(f"cannot index a {type(container).__name__}", str(container)[:40])
    try:
        return container[index]
    except IndexError:
        raise EvalError("index out of range", str(index)) from None


def nesting_depth(tree: ast.AST) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


RNG_KEY = " rng"  # not an identifier, so no template variable can shadow it


def compile_expression(source: str, *, variables: Collection[str] = (),
                       unknown: Callable[[str], str] = lambda name: f"unknown name {name!r}") -> Compiled:
    """Parse and check `source` once; returns a Compiled expression. Raises EvalError."""
    text = source.strip()
    if not text:
        raise EvalError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise EvalError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    first_word = text.split(None, 1)[0]
    if first_word in ("import", "from"):
        raise EvalError("imports are not allowed", first_word)
    try:
        tree = ast.parse(text, mode="eval").body
    except (RecursionError, MemoryError):
        raise EvalError("expression nested too deeply", text[:30]) from None
    except SyntaxError as exc:
        raise EvalError(f"syntax error: {exc.msg}", text[max((exc.offset or 1) - 1, 0):][:30] or text[:30]) from None
    if nesting_depth(tree) > MAX_NESTING:
        raise EvalError(f"expression nested more than {MAX_NESTING} levels deep", text[:30])
    compiler = _Compiler(variables, unknown)
    run, constant = compiler.compile(tree)
    return Compiled(text, run, frozenset(compiler.names), constant, tree)


def evaluate(source: str, env: Env | None = None) -> Any:
    """Compile and run once (for one-off uses; templates keep their Compiled expressions)."""
    env = env or {}
    return compile_expression(source, variables=env.keys())(env)

