"""Filters over synthesized questions: format, difficulty band, near-duplicates, decontamination.

Each filter takes `Problem` records and returns a `FilterResult`: the problems it kept (with
its verdict added to `meta["synth"]["filters"]`) and counts per reason. A malformed item (a
question that is not text, a blank one) is counted, never raised. Solvability by agreement,
which needs a model, lives in `synth.agreement`.

    from reasonloop.sources.synth.filters import format_filter, dedup_filter
    kept = format_filter(candidates)
    print(kept.counts)            # {'in': 200, 'kept': 131, 'no_question_mark': 40, ...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem

MIN_WORDS, MAX_WORDS, MIN_NUMBERS = 8, 120, 2
NUMBER = re.compile(r"[$€£₹]?-?\d[\d,]*(?:\.\d+)?%?|-?\.\d+%?")
# A question that already carries its working or answer: an answer marker, a calculator call,
# a boxed answer, or an equation with a result ("12 + 5 = 17").
SOLUTION_MARKERS = re.compile(r"####|<<|\\boxed|\banswer\s*(?:is|:)|\bsolution\s*:|\d\s*[-+*/x×]\s*\d[^?]*=\s*\d",
                              re.I)
NUM_TOKEN, NAME_TOKEN = "<num>", "<name>"
WORD = re.compile(r"<num>|[A-Za-z][A-Za-z'-]*|[^\sA-Za-z]")


class NothingUsable(ReasonloopError):
    """No synthesized question passed the filters: the message gives the counts and what to try."""


@dataclass
class FilterResult:
    """What one filter kept, and how many items it saw and dropped per reason."""

    name: str
    kept: list[Problem]
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        dropped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.counts.items()) if reason not in ("in", "kept"))
        return f"{self.name}: kept {self.counts.get('kept', 0)} of {self.counts.get('in', 0)}" + (f" ({dropped})" if dropped else "")


def synth_meta(problem: Problem) -> dict:
    return dict(problem.meta.get("synth") or {})


def with_verdict(problem: Problem, filter_name: str, verdict: str, **extra) -> Problem:
    """A copy of `problem` whose provenance records this filter's verdict (and extra fields)."""
    meta = synth_meta(problem)
    meta["filters"] = {**meta.get("filters", {}), filter_name: verdict}
    meta.update(extra)
    return problem.model_copy(update={"meta": {**problem.meta, "synth": meta}})


def tally(name: str, total: int, kept: list[Problem], reasons: Iterable[str]) -> FilterResult:
    counts: dict[str, int] = {"in": total, "kept": len(kept)}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return FilterResult(name, kept, counts)


# ---------------------------------------------------------------- format


def format_problem(text: object) -> str | None:
    """Why `text` is not a well-formed question (None: it is one)."""
    if not isinstance(text, str):
        return "malformed"
    text = text.strip()
    if not text:
        return "empty"
    if SOLUTION_MARKERS.search(text):
        return "contains_solution"
    if not text.endswith("?"):
        return "no_question_mark"
    words = len(text.split())
    if words < MIN_WORDS:
        return "too_short"
    if words > MAX_WORDS:
        return "too_long"
    if len(NUMBER.findall(text)) < MIN_NUMBERS:
        return "few_numbers"
    return None


def format_filter(problems: Sequence[Problem]) -> FilterResult:
    """Keep questions that end with '?', have 8-120 words, at least two numbers and no worked solution."""
    kept, reasons = [], []
    for problem in problems:
        reason = format_problem(problem.question)
        if reason:
            reasons.append(reason)
        else:
            kept.append(with_verdict(problem, "format", "pass"))
    return tally("format", len(problems), kept, reasons)


# ---------------------------------------------------------------- difficulty


def difficulty_filter(problems: Sequence[Problem], *, min_pass: float = 0.0, max_pass: float = 1.0) -> FilterResult:
    """Keep problems whose solver pass rate (`meta["synth"]["pass_rate"]`, set by the solvability
    filter) lies in [min_pass, max_pass]; a pass rate of 0 is never kept (nothing to learn from)."""
    if not 0 <= min_pass <= max_pass <= 1:
        raise ReasonloopError(f"difficulty band: need 0 <= min_pass <= max_pass <= 1, got {min_pass}, {max_pass}")
    kept, reasons = [], []
    for problem in problems:
        rate = synth_meta(problem).get("pass_rate")
        if not isinstance(rate, (int, float)):
            reasons.append("no_pass_rate")
        elif rate <= 0 or rate < min_pass:
            reasons.append("too_hard")
        elif rate > max_pass:
            reasons.append("too_easy")
        else:
            kept.append(with_verdict(problem, "difficulty", "pass"))
    return tally("difficulty", len(problems), kept, reasons)


# ---------------------------------------------------------------- near-duplicates


def name_words() -> frozenset[str]:
    from reasonloop.sources.templates.pools import NAMES_FEMALE, NAMES_MALE, NAMES_UNISEX

    return frozenset(NAMES_MALE + NAMES_FEMALE + NAMES_UNISEX)


def skeleton(text: str) -> str:
    """The question with every number replaced by `<num>` and every name by `<name>`, lower-cased.

    A name is a word of the template name pools, or any capitalised word that does not start
    a sentence (a proper noun); so two instances of one template share a skeleton."""
    names = name_words()
    tokens = WORD.findall(NUMBER.sub(f" {NUM_TOKEN} ", text))
    out, sentence_start = [], True
    for token in tokens:
        if token == NUM_TOKEN:
            out.append(token)
        elif token[0].isalpha():
            is_name = token in names or (token[0].isupper() and not sentence_start and token.lower() != "i")
            out.append(NAME_TOKEN if is_name else token.lower())
        else:
            out.append(token)
        sentence_start = token in (".", "?", "!")
    return " ".join(out)


def shingles(text: str, size: int = 2) -> set[str]:
    """Word `size`-grams of the skeleton (the whole skeleton when shorter)."""
    words = skeleton(text).split()
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def minhashes(texts: Sequence[str], num_perm: int, seed: int = 1) -> list:
    """MinHash digests of the texts' skeleton shingles (one shared set of permutations)."""
    from datasketch import MinHash

    return MinHash.bulk([[gram.encode("utf-8") for gram in shingles(text)] for text in texts],
                        num_perm=num_perm, seed=seed)


def dedup_filter(problems: Sequence[Problem], *, threshold: float = 0.7, num_perm: int = 128,
                 against: Sequence[Problem] = ()) -> FilterResult:
    """Drop questions whose skeleton is a near-duplicate (estimated Jaccard of word bigrams >=
    `threshold`, MinHash LSH from datasketch) of an earlier kept one or of any of `against`
    (e.g. the training set: what survives has a novel skeleton)."""
    from datasketch import MinHashLSH

    if not 0 < threshold <= 1:
        raise ReasonloopError(f"dedup threshold must be in (0, 1], got {threshold}")
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    stored = {f"ref:{position}": digest for position, digest in enumerate(minhashes([p.question for p in against], num_perm))}
    with index.insertion_session() as session:
        for key, digest in stored.items():
            session.insert(key, digest)
    kept, reasons = [], []
    for position, (problem, digest) in enumerate(zip(problems, minhashes([p.question for p in problems], num_perm))):
        # LSH returns candidates; keep those whose estimated Jaccard really reaches the threshold
        hits = [key for key in index.query(digest) if digest.jaccard(stored[key]) >= threshold]
        if hits:
            reasons.append("duplicate_of_reference" if all(k.startswith("ref:") for k in hits) else "near_duplicate")
            continue
        index.insert(f"new:{position}", digest)
        stored[f"new:{position}"] = digest
        kept.append(with_verdict(problem, "dedup", "pass"))
    return tally("dedup", len(problems), kept, reasons)


def pairwise_jaccard_dedup(problems: Sequence[Problem], *, threshold: float = 0.7) -> list[Problem]:
    """The naive baseline: exact Jaccard of every new question against every kept one (O(n^2))."""
    kept: list[tuple[Problem, set[str]]] = []
    for problem in problems:
        grams = shingles(problem.question)
        if all(len(grams & other) / len(grams | other) < threshold for _, other in kept):
            kept.append((problem, grams))
    return [problem for problem, _ in kept]


# ---------------------------------------------------------------- decontamination


def decontaminate_filter(problems: Sequence[Problem], suites: dict[str, Sequence[Problem]], *,
                         n: int = 13) -> FilterResult:
    """Drop questions sharing a word n-gram with a question of a named evaluation set
    (the contamination check of `reasonloop.evaluate.contamination`)."""
    from reasonloop.evaluate.contamination import NgramIndex

    indexes = {suite: NgramIndex.build(((p.id, p.question) for p in items), n) for suite, items in suites.items()}
    kept, reasons = [], []
    for problem in problems:
        hit = next((suite for suite, index in indexes.items() if index.matches(problem.question)), None)
        if hit:
            reasons.append(f"contaminated:{hit}")
        else:
            kept.append(with_verdict(problem, "decontaminate", "pass", checked_against=sorted(suites)))
    return tally("decontaminate", len(problems), kept, reasons)


# ---------------------------------------------------------------- the chain


def refuse_if_empty(results: Sequence[FilterResult], advice: str) -> None:
    """Stop with every filter's counts when the last one kept nothing."""
    if results and not results[-1].kept:
        lines = "; ".join(result.summary() for result in results)
        raise NothingUsable(f"no synthesized question passed the filters ({lines}); {advice}")
