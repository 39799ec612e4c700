"""`grade` and `grade_batch`: one verifier for rewards, filters, selection and metrics.

A completion's final answer is extracted (`extract.py`) and compared with the reference by
the fast path (`compare.py`) in this process; the pairs it cannot decide go to math-verify
in worker processes with a hard per-item timeout (`pool.py`). Every verdict carries
`VERIFIER_NAME VERIFIER_VERSION` (plus `+last-number` when the fallback was allowed and
`+decimal-digits=N` under a decimal precision other than the default), so results graded
under other rules can be told apart.

One grading rule by default: an answer counts only in final form (`\\boxed{}`, `#### N`,
`the answer is N` / `Answer: N`, a line starting `A: N`). `last_number_fallback=True` also
takes the last number of a completion without one, for references that are plain numbers
(`kind="auto"`) or for every reference (`kind="numeric"`); it is for evaluating models that
do not follow the format, never the default.
"""

from __future__ import annotations

import re
from typing import Sequence

from reasonloop.records import Verdict
from reasonloop.text import gsm8k_final_answer, last_boxed
from reasonloop.verify.compare import ROUNDED_DECIMAL_DIGITS, UNIT_POWERS_DIFFER, check_decimal_digits, compare_answers
from reasonloop.verify.extract import Found, find_answer
from reasonloop.verify.pool import shared_pool, warm_up
from reasonloop.verify.worker import shorten

VERIFIER_NAME = "reasonloop-verify"
VERIFIER_VERSION = "2.1"  # 2.0: final form only by default, last-number fallback opt-in; 2.1: issue #20 forms (\\overline, mixed numbers, reals, unit powers)
LAST_NUMBER_TAG = "+last-number"
DECIMAL_DIGITS_TAG = "+decimal-digits="
KINDS = ("auto", "math", "numeric")
MAX_ANSWER_CHARS = 1000
PLAIN_NUMBER = re.compile(r"^\s*\$?\s*-?(?:\d[\d,]*)?\.?\d+\s*$")


def verifier_id(last_number_fallback: bool = False, decimal_digits: int = ROUNDED_DECIMAL_DIGITS) -> str:
    """The verifier's name and version, tagged when the last-number fallback was allowed and when
    decimals were graded under another precision than the default (`+decimal-digits=8`)."""
    tags = LAST_NUMBER_TAG if last_number_fallback else ""
    if decimal_digits != ROUNDED_DECIMAL_DIGITS:
        tags += f"{DECIMAL_DIGITS_TAG}{decimal_digits}"
    return f"{VERIFIER_NAME} {VERIFIER_VERSION}{tags}"


def grade(completion: str, reference: str, *, kind: str = "auto", timeout: float = 5.0,
          last_number_fallback: bool = False, decimal_digits: int = ROUNDED_DECIMAL_DIGITS) -> Verdict:
    """Grade one completion against a reference answer. Never raises on bad model output."""
    return grade_batch([(completion, reference)], kind=kind, timeout=timeout,
                       last_number_fallback=last_number_fallback, decimal_digits=decimal_digits)[0]


def grade_batch(
    items: Sequence[tuple[str, str]], *, kind: str = "auto", timeout: float = 5.0, workers: int | None = None,
    last_number_fallback: bool = False, decimal_digits: int = ROUNDED_DECIMAL_DIGITS,
) -> list[Verdict]:
    """Grade (completion, reference) pairs, in order; hard pairs run in parallel in the grader pool.

    `decimal_digits` (3..15, refused otherwise before anything is graded): significant digits from
    which a decimal stands for the values it rounds or truncates (`compare.py`). Only the fast path
    honours it: the pairs it leaves to math-verify are graded under math-verify's own rule
    (`verify()`'s default `float_rounding=6`, decimal places), whatever `decimal_digits` says."""
    check_arguments(kind, timeout, decimal_digits)
    if items:
        warm_up(workers)  # the workers import math-verify while the fast path runs (once per process)
    stamp = verifier_id(last_number_fallback, decimal_digits)
    verdicts: list[Verdict | None] = []
    hard: list[tuple[int, Found, str]] = []
    for index, (completion, reference) in enumerate(items):
        verdict = grade_fast(completion, reference, kind, last_number_fallback, decimal_digits)
        if isinstance(verdict, tuple):
            hard.append((index, *verdict))
            verdict = None
        verdicts.append(verdict)
    if hard:
        outcomes = shared_pool(workers).run([(found.answer, ref) for _, found, ref in hard], timeout)
        for (index, found, ref), (status, reason) in zip(hard, outcomes):
            verdicts[index] = make_verdict(status, found.answer, ref, reason, found)
    for verdict in verdicts:
        verdict.verifier = stamp  # type: ignore[union-attr]
    return verdicts  # type: ignore[return-value]


def check_arguments(kind: str, timeout: float, decimal_digits: int = ROUNDED_DECIMAL_DIGITS) -> None:
    check_decimal_digits(decimal_digits)
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


def grade_fast(completion: str, reference: str, kind: str, last_number_fallback: bool = False,
               decimal_digits: int = ROUNDED_DECIMAL_DIGITS) -> Verdict | tuple[Found, str]:
    """A verdict, or the (found answer, reference) pair the fast path leaves to math-verify."""
    ref = reference_answer(reference)
    if ref is None:
        return make_verdict("error", None, None, "the reference answer is missing or empty")
    if len(ref) > MAX_ANSWER_CHARS:
        return make_verdict("error", None, ref[:MAX_ANSWER_CHARS], f"the reference is {len(ref)} characters (limit {MAX_ANSWER_CHARS})")
    fallback = last_number_fallback and (kind == "numeric" or (kind == "auto" and bool(PLAIN_NUMBER.match(ref))))
    found = find_answer(completion, last_number_fallback=fallback) if isinstance(completion, str) else None
    if found is None:
        markers = "\\boxed{}, ####, 'answer is', 'A:'" + (" or a last number" if fallback else "")
        return make_verdict("no_answer", None, ref, f"no final answer found (looked for {markers})")
    answer = found.answer
    if len(answer) > MAX_ANSWER_CHARS:
        return make_verdict("error", answer[:MAX_ANSWER_CHARS], ref,
                            f"the answer is {len(answer)} characters (limit {MAX_ANSWER_CHARS})", found)
    try:
        decision, form = compare_answers(answer, ref, decimal_digits=decimal_digits)
    except Exception:  # noqa: BLE001  (a fast-path failure must not stop a run: math-verify decides instead)
        decision, form = None, ""
    if decision is None:
        return (found, ref)
    if decision:
        return make_verdict("correct", answer, ref, f"{shorten(answer)} equals {shorten(ref)} (as {form})", found)
    basis = "the units' powers differ" if form == UNIT_POWERS_DIFFER else f"as {form}"
    return make_verdict("incorrect", answer, ref, f"{shorten(answer)} differs from {shorten(ref)} ({basis})", found)


def reference_answer(reference: str) -> str | None:
    """The final answer of a reference: itself, or a worked solution's `\\boxed{}` / `#### N`."""
    if not isinstance(reference, str) or not reference.strip():
        return None
    text = reference.strip()
    if "\\boxed" in text or "\\fbox" in text:
        text = last_boxed(text) or text
    elif "####" in text:
        text = gsm8k_final_answer(text) or text
    return text.strip() or None


def make_verdict(status: str, extracted: str | None, reference: str | None, reason: str,
                 found: Found | None = None) -> Verdict:
    return Verdict(status=status, extracted=extracted, reference=reference, reason=reason, verifier=verifier_id(),
                   rule=found.rule if found else None, marker=found.marker if found else None)
