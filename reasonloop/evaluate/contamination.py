"""Contamination checks: word n-gram overlap between training text and evaluation items.

Texts are normalised with `reasonloop.text.normalize_question` (lower case, punctuation
dropped, whitespace collapsed) and cut into word n-grams (13 by default, as in the GPT-3
and Llama reports). A training text is *contaminated* by an evaluation item when they
share one n-gram. An item shorter than n words is matched as a whole: flagged when its
full text appears inside a training text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from reasonloop.atomic import atomic_write_text
from reasonloop.records import Problem, RecordError, check_path
from reasonloop.text import normalize_question

DEFAULT_N = 13


def words(text: str) -> list[str]:
    return normalize_question(text).split()


def word_ngrams(text: str, n: int = DEFAULT_N) -> set[str]:
    """The text's word n-grams (the whole text when it is shorter than n words)."""
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class NgramIndex:
    """Evaluation items indexed by their n-grams, for fast lookup of training texts."""

    n: int = DEFAULT_N
    grams: dict[str, list[str]] = field(default_factory=dict)  # n-gram -> item ids
    short_lengths: set[int] = field(default_factory=set)  # word counts of items shorter than n

    @classmethod
    def build(cls, items: Iterable[tuple[str, str]], n: int = DEFAULT_N) -> "NgramIndex":
        """Index (item id, text) pairs."""
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        index = cls(n=n)
        for item_id, text in items:
            for gram in word_ngrams(text, n):
                index.grams.setdefault(gram, []).append(item_id)
                if len(gram.split()) < n:
                    index.short_lengths.add(len(gram.split()))
        return index

    def matches(self, text: str) -> dict[str, str]:
        """Item id -> one n-gram it shares with `text`."""
        tokens = words(text)
        found: dict[str, str] = {}
        for length in sorted({self.n} | self.short_lengths):
            for start in range(len(tokens) - length + 1):
                gram = " ".join(tokens[start : start + length])
                for item_id in self.grams.get(gram, ()):
                    found.setdefault(item_id, gram)
        return found


def overlapping(texts: Sequence[str], reference: Sequence[str], n: int = DEFAULT_N) -> list[tuple[int, int, str]]:
    """(index in texts, index in reference, shared n-gram) for every overlapping pair."""
    index = NgramIndex.build(((str(j), text) for j, text in enumerate(reference)), n)
    return [(i, int(j), gram) for i, text in enumerate(texts) for j, gram in index.matches(text).items()]


def row_texts(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (each field on its own, so n-grams never span fields)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from row_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from row_texts(item)


@dataclass(frozen=True)
class Flag:
    """A training row that shares an n-gram with an evaluation item."""

    line: int
    suite: str
    problem_id: str
    question: str
    ngram: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "suite": self.suite, "problem_id": self.problem_id,
                "question": self.question, "ngram": self.ngram}


@dataclass
class ContaminationReport:
    path: str
    n: int
    rows: int = 0
    flags: list[Flag] = field(default_factory=list)

    @property
    def flagged_lines(self) -> list[int]:
        return sorted({flag.line for flag in self.flags})

    def by_suite(self) -> dict[str, int]:
        """Suite -> number of its items found in the training file."""
        counts: dict[str, set[str]] = {}
        for flag in self.flags:
            counts.setdefault(flag.suite, set()).add(flag.problem_id)
        return {suite: len(ids) for suite, ids in counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "n": self.n, "rows": self.rows, "flagged_rows": len(self.flagged_lines),
                "items_by_suite": self.by_suite(), "flags": [flag.to_dict() for flag in self.flags]}


def read_json_lines(path: str | Path) -> list[tuple[int, str, Any]]:
    """(line number, raw line, parsed JSON) for each non-blank line; bad JSON names the line."""
    path = check_path(path)
    rows = []
    with path.open("r", encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                rows.append((number, raw if raw.endswith("\n") else raw + "\n", json.loads(raw)))
            except json.JSONDecodeError as exc:
                raise RecordError(path, number, None, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def check_contamination(
    train_path: str | Path, suites: dict[str, Sequence[Problem]], *, n: int = DEFAULT_N
) -> ContaminationReport:
    """Flag every training row sharing an n-gram with a question of any suite."""
    rows = read_json_lines(train_path)
    report = ContaminationReport(path=str(train_path), n=n, rows=len(rows))
    for suite, problems in suites.items():
        by_id = {p.id: p for p in problems}
        index = NgramIndex.build(((p.id, p.question) for p in problems), n)
        for line, _, row in rows:
            hits: dict[str, str] = {}
            for text in row_texts(row):
                for item_id, gram in index.matches(text).items():
                    hits.setdefault(item_id, gram)
            report.flags.extend(Flag(line, suite, pid, by_id[pid].question, gram) for pid, gram in hits.items())
    return report


def decontaminate(
    train_path: str | Path, suites: dict[str, Sequence[Problem]], out_path: str | Path, *, n: int = DEFAULT_N
) -> ContaminationReport:
    """Write the training rows that overlap no suite item to `out_path` (atomically, bytes kept)."""
    report = check_contamination(train_path, suites, n=n)
    flagged = set(report.flagged_lines)
    kept = [raw for line, raw, _ in read_json_lines(train_path) if line not in flagged]
    atomic_write_text(out_path, "".join(kept))
    return report
