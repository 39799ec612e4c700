"""The helper functions template expressions may call, found by exact name in `HELPERS`.

Add one with the `@helper("name")` decorator; `random=True` helpers receive the
instance's `Rng` as first argument. Semantics, inferred from how the GSM-Symbolic files
use them (see docs/templates.md):

- `range(a, b[, step])` Python's range (ints); `arange`/`np.arange`/`frange(a, b, step)`
  exact decimal steps from a up to (not including) b.
- `sample(seq)` one item; `sample(seq, k)` k items at distinct positions;
  `sample_sequential(seq, k)` k consecutive items (weekdays in order);
  `shuffle_list(seq)` a shuffled copy; `randint(a, b)` inclusive;
  `np.random.randint(low, high, size)` numpy's: high exclusive, a list of `size` draws.
- `numbers_within(a, b)` the numbers a..b (inclusive) written as words ("four", 4).
- `is_int(x)`, `divides(a, b)` (a is a multiple of b), `fix_floats(x)` (round to cents),
  `format_frac(x)` (mixed number text "3 1/2"), `Fraction`, `int`, `round`, `list`,
  and `abs`, `min`, `max`, `sum`, `len`, `floor`, `ceil`, `gcd`, `lcm`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

from reasonloop.sources.templates.errors import EvalError
from reasonloop.sources.templates.values import Labeled, as_labeled, exact, format_mixed, is_number, normalize

MAX_ITEMS = 1_000_000  # longest list or range an expression may build
MAX_TEXT = 100_000  # longest string


MASK64 = (1 << 64) - 1


class Rng:
    """SplitMix64 seeded from a SHA-256 of (template id, seed, index): same draws on any machine.

    Pure integer arithmetic, so it does not depend on the platform or Python version, and
    it starts ~10x faster than `random.Random` (sampling builds one per instance)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next64(self) -> int:
        self.state = state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & MASK64
        return state ^ (state >> 31)

    def below(self, n: int) -> int:
        """A uniform integer in [0, n) (rejection keeps it unbiased)."""
        if n <= 0:
            raise EvalError("cannot draw from an empty sequence")
        if n > MASK64:
            raise EvalError(f"cannot draw from {n:,} items")
        limit = (MASK64 + 1) - (MASK64 + 1) % n
        value = self.next64()
        while value >= limit:
            value = self.next64()
        return value % n


def make_rng(template_id: str, seed: int, index: int, salt: str = "") -> Rng:
    digest = hashlib.sha256(f"{template_id}\x1f{seed}\x1f{index}\x1f{salt}".encode()).digest()
    return Rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Helper:
    name: str
    function: Callable[..., Any]
    random: bool = False


HELPERS: dict[str, Helper] = {}


def helper(*names: str, random: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function under one or more exact names (dotted names allowed)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            HELPERS[name] = Helper(name, function, random)
        return function

    return register


def check_size(value: Any, limit: int = MAX_ITEMS) -> Any:
    if len(value) > limit:
        raise EvalError(f"too large: {len(value):,} items (limit {limit:,})")
    return value


def plain(value: Any) -> Any:
    return value.value if value.__class__ is Labeled else value


def whole(value: Any, what: str) -> int:
    value = plain(value)
    if isinstance(value, Fraction) and value.denominator == 1:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EvalError(f"{what} needs whole numbers", str(value))
    return value


def sequence(value: Any, what: str) -> Any:
    if isinstance(value, (list, tuple, range, str)):
        return value
    raise EvalError(f"{what} needs a list", str(value)[:40])


# ------------------------------------------------------------------- ranges


@helper("range")
def range_(*args: Any) -> range:
    if not 1 <= len(args) <= 3:
        raise EvalError("range takes 1 to 3 arguments")
    result = range(*[whole(arg, "range") for arg in args])
    return check_size(result)


@helper("arange", "np.arange", "frange")
def arange(start: Any, stop: Any = None, step: Any = 1) -> list:
    if stop is None:
        start, stop = 0, start
    start, stop, step = (exact(plain(x)) if isinstance(plain(x), float) else plain(x) for x in (start, stop, step))
    if not all(is_number(x) for x in (start, stop, step)) or step == 0:
        raise EvalError("arange needs numbers and a non-zero step")
    count = max(0, math.ceil((stop - start) / step))
    if count > MAX_ITEMS:
        raise EvalError(f"range too large: {count:,} items (limit {MAX_ITEMS:,})")
    return [normalize(start + i * step) for i in range(count)]


@helper("numbers_within")
def numbers_within(low: Any, high: Any) -> list:
    low, high = whole(low, "numbers_within"), whole(high, "numbers_within")
    check_size(range(low, high + 1))
    return [Labeled(spell(n), n) for n in range(low, high + 1)]


# ------------------------------------------------------------------- random draws


@helper("sample", random=True)
def sample(rng: Rng, items: Any, k: Any = None) -> Any:
    items = sequence(items, "sample")
    if k is None:
        return as_labeled(items[rng.below(len(items))])
    k = whole(k, "sample")
    if k > len(items) or k < 0:
        raise EvalError(f"cannot sample {k} distinct items from {len(items)}")
    chosen: list[int] = []
    while len(chosen) < k:
        position = rng.below(len(items))
        if position not in chosen:
            chosen.append(position)
    return [as_labeled(items[position]) for position in chosen]


@helper("sample_sequential", random=True)
def sample_sequential(rng: Rng, items: Any, k: Any) -> list:
    items, k = sequence(items, "sample_sequential"), whole(k, "sample_sequential")
    if not 0 < k <= len(items):
        raise EvalError(f"cannot take {k} consecutive items from {len(items)}")
    start = rng.below(len(items) - k + 1)
    return [as_labeled(item) for item in items[start:start + k]]


@helper("shuffle_list", random=True)
def shuffle_list(rng: Rng, items: Any) -> list:
    result = list(sequence(items, "shuffle_list"))
    for last in range(len(result) - 1, 0, -1):
        other = rng.below(last + 1)
        result[last], result[other] = result[other], result[last]
    return result


@helper("randint", random=True)
def randint(rng: Rng, low: Any, high: Any) -> int:
    low, high = whole(low, "randint"), whole(high, "randint")
    return low + rng.below(high - low + 1)


@helper("np.random.randint", random=True)
def numpy_randint(rng: Rng, low: Any, high: Any = None, size: Any = None) -> Any:
    low = whole(low, "np.random.randint")
    low, high = (0, low) if high is None else (low, whole(high, "np.random.randint"))
    if size is None:
        return low + rng.below(high - low)
    count = whole(size, "np.random.randint")
    check_size(range(count))
    return [low + rng.below(high - low) for _ in range(count)]


# ------------------------------------------------------------------- numbers


@helper("is_int")
def is_int(value: Any) -> bool:
    value = plain(value)
    if isinstance(value, bool) or isinstance(value, int):
        return not isinstance(value, bool)
    if isinstance(value, Fraction):
        return value.denominator == 1
    if isinstance(value, float):
        return value.is_integer()
    return False


@helper("divides")
def divides(value: Any, divisor: Any) -> bool:
    """True when `value` is a whole multiple of `divisor` (`divides(12, 4)`)."""
    value, divisor = plain(value), plain(divisor)
    return divisor != 0 and value % divisor == 0


@helper("fix_floats")
def fix_floats(value: Any) -> Any:
    """Round to two decimals (the files use it to clean up float ranges)."""
    value = plain(value)
    if isinstance(value, (list, tuple, range)):
        return [fix_floats(item) for item in value]
    if value.__class__ is int or (value.__class__ is Fraction and 100 % value.denominator == 0):
        return value  # already whole cents
    return normalize(round(Fraction(value), 2)) if is_number(value) else value


@helper("format_frac")
def format_frac(value: Any) -> str:
    return format_mixed(plain(value))


@helper("Fraction")
def fraction(numerator: Any, denominator: Any = 1) -> Any:
    numerator, denominator = plain(numerator), plain(denominator)
    if not is_number(numerator) or not is_number(denominator):
        raise EvalError("Fraction needs numbers", str(numerator))
    return normalize(Fraction(exact(numerator) if isinstance(numerator, float) else numerator)
                     / Fraction(exact(denominator) if isinstance(denominator, float) else denominator))


@helper("int")
def int_(value: Any) -> int:
    value = plain(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise EvalError("int() of text that is not a number", value[:40]) from None
    return int(value)


@helper("round")
def round_(value: Any, places: Any = None) -> Any:
    value = plain(value)
    return round(value) if places is None else normalize(round(value, whole(places, "round")))


@helper("list")
def list_(items: Any = ()) -> list:
    return check_size(list(sequence(plain(items), "list")))


@helper("abs")
def abs_(value: Any) -> Any:
    return abs(plain(value))


@helper("min")
def min_(*values: Any) -> Any:
    items = values[0] if len(values) == 1 else values
    return min(sequence(items, "min") if len(values) == 1 else items, key=plain)


@helper("max")
def max_(*values: Any) -> Any:
    items = values[0] if len(values) == 1 else values
    return max(sequence(items, "max") if len(values) == 1 else items, key=plain)


@helper("sum")
def sum_(items: Any) -> Any:
    return normalize(sum(plain(item) for item in sequence(items, "sum")))


@helper("len")
def len_(items: Any) -> int:
    return len(sequence(items, "len"))


@helper("floor")
def floor(value: Any) -> int:
    return math.floor(plain(value))


@helper("ceil")
def ceil(value: Any) -> int:
    return math.ceil(plain(value))


@helper("gcd")
def gcd(a: Any, b: Any) -> int:
    return math.gcd(whole(a, "gcd"), whole(b, "gcd"))


@helper("lcm")
def lcm(a: Any, b: Any) -> int:
    return math.lcm(whole(a, "lcm"), whole(b, "lcm"))


# ------------------------------------------------------------------- spelling numbers

SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n: int) -> str:
    """42 -> 'forty-two', 300 -> 'three hundred', 1250 -> 'one thousand two hundred fifty'."""
    if n < 0:
        return "minus " + spell(-n)
    if n < 20:
        return SMALL[n]
    if n < 100:
        tens, units = divmod(n, 10)
        return TENS_WORDS[tens - 2] + (f"-{SMALL[units]}" if units else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{SMALL[hundreds]} hundred" + (f" {spell(rest)}" if rest else "")
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return f"{spell(thousands)} thousand" + (f" {spell(rest)}" if rest else "")
    return str(n)


def is_numeric_value(value: Any) -> bool:
    return is_number(plain(value))
