"""What a grader worker process runs: math-verify on one (prediction, reference) pair.

math-verify's own timeouts use `signal.alarm` with whole seconds; we turn them off and put
one `setitimer` alarm around parse + verify instead, so the limit is the caller's
(fractional) timeout. The alarm raises a BaseException that math-verify's
`except Exception` blocks cannot swallow. Code that ignores signals (a C-level big-integer
power) is handled one level up: the pool kills the worker.
"""

from __future__ import annotations

import logging
import resource
import signal

MEMORY_LIMIT_BYTES = 4 << 30
Outcome = tuple[str, str]  # (status, reason)


class ItemTimeout(BaseException):
    """Raised by the alarm; a BaseException so library `except Exception` blocks let it through."""


def on_alarm(signum, frame):
    raise ItemTimeout


def prepare() -> None:
    """Import and warm up math-verify once per worker, silence its timeout warnings, cap memory."""
    import math_verify.parser
    from math_verify import parse, verify

    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # the first parse builds the LaTeX grammar (~0.5 s): pay it before announcing readiness
    verify(parse("$\\frac{1}{2}$", parsing_timeout=None), parse("$0.5$", parsing_timeout=None), timeout_seconds=None)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        pass


def math_verify_pair(prediction: str, reference: str, timeout: float) -> Outcome:
    from math_verify import parse, verify

    signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.01))
    try:
        gold = parse(f"${reference}$", parsing_timeout=None)
        if not gold:
            return ("error", f"math-verify could not parse the reference {shorten(reference)}")
        guess = parse(f"${prediction}$", parsing_timeout=None)
        if not guess:
            return ("incorrect", f"math-verify could not parse the answer {shorten(prediction)}")
        if verify(gold, guess, timeout_seconds=None):
            return ("correct", f"math-verify: {shorten(guess[-1])} equals {shorten(gold[-1])}")
        return ("incorrect", f"math-verify: {shorten(guess[-1])} differs from {shorten(gold[-1])}")
    except ItemTimeout:
        return ("timeout", f"math-verify gave up after {timeout:g} s")
    except MemoryError:
        return ("error", "math-verify ran out of memory")
    except RecursionError:
        return ("error", "math-verify hit the recursion limit")
    except Exception as exc:  # noqa: BLE001  (any library failure becomes a verdict, never a crash)
        return ("error", f"math-verify failed: {type(exc).__name__}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def shorten(text, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def serve(inbox, outbox) -> None:
    """Worker main loop: announce readiness, then answer (index, prediction, reference, timeout) messages."""
    prepare()
    outbox.send("ready")
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, prediction, reference, timeout = message
        try:
            outbox.send((index, math_verify_pair(prediction, reference, timeout)))
        except (BrokenPipeError, OSError):
            return


def main(argv: list[str]) -> None:
    """Entry point of a worker interpreter: `argv` holds the fds of its two pipes."""
    from multiprocessing.connection import Connection

    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))
