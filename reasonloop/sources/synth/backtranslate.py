"""Back-translation with a Cycle Verifier (tool learning via inference-time scaling, ACL 2025
Findings), for worked math solutions, as built here.

A back-translator (the existing SFT trainer, prompt `Solution: ... #### answer` -> completion
question) is trained on (solution -> question) pairs of training templates. From solutions
whose question is withheld it writes questions; the solver answers each one (greedy, through
`reasonloop.solve`, graded by the one verifier against the solution's answer). A pair is kept
only when the cycle closes (the solved answer equals the solution's) and the rule checks pass:
the answer is a well-formed number, and every number the solution takes from its question
appears in the generated question. Each round retrains the back-translator from the starting
model on the training pairs plus every pair kept so far, and retries the solutions not yet kept.

"The numbers the solution takes from its question" are read from the solution alone: every
number it writes except the results of its steps (right of '='), its final answer and common
unit constants (24, 60, 100, 1000, 52, 365); a question may state 2, 3, 4, 12 and 100 as words
(half, twice, triple, quarter, dozen, percent). A constant outside that list (10 mm in a cm) is
asked for, so such a pair is dropped even with a faithful question: the rule errs strict.

The oracle (no person involved): the withheld question of the held-back template instance is
known, so a kept question is *checked right* when it states the same quantities (the same
multiset of numbers) as that question — whose answer, by construction, is the solution's.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.prompts import PromptFormat, load_prompt_format
from reasonloop.records import Problem
from reasonloop.sources.synth.filters import NUMBER
from reasonloop.sources.synth.qft import provenance, train_writer, writer_format
from reasonloop.text import format_number, strip_calculator_annotations

BT_FORMAT = PromptFormat(name="backtranslate", prompt="Solution: {question}\nQuestion:", target=" {solution}",
                         stop=("\n",))
if TYPE_CHECKING:
    from reasonloop.train.sft import SFTSettings

RESULT = re.compile(r"=\s*([$€£₹]?-?\d[\d,]*(?:\.\d+)?%?)")
# Numbers a question may state in words, and unit constants a solution may bring in itself
# (10 mm in a cm, 60 minutes in an hour): the rule does not ask for those in digits.
NUMBER_WORDS = {"half": "2", "twice": "2", "double": "2", "doubles": "2", "triple": "3", "thrice": "3",
                "third": "3", "quarter": "4", "dozen": "12", "percent": "100", "%": "100"}
UNIT_CONSTANTS = frozenset({"24", "60", "100", "1000", "52", "365"})


def solution_prompt(problem: Problem) -> str:
    """A worked solution and its answer on one line, calculator calls removed (the writer's input)."""
    text = " ".join(strip_calculator_annotations(problem.solution or "").split())
    return f"{text} #### {problem.answer}"


def number_values(text: str) -> list[str]:
    return [format_number(n.strip("$€£₹%")) for n in NUMBER.findall(text)]


def given_numbers(problem: Problem) -> set[str]:
    """The numbers a worked solution takes from its question: those it writes that are neither a
    result (right of '=') nor the final answer."""
    text = strip_calculator_annotations(problem.solution or "")
    results = set(number_values(" ".join(RESULT.findall(text)))) | {format_number(problem.answer)}
    return set(number_values(text)) - results - UNIT_CONSTANTS


def question_numbers(question: str) -> set[str]:
    """The numbers a question states, in digits or as the words of NUMBER_WORDS."""
    words = set(re.findall(r"[a-z]+|%", question.lower()))
    return set(number_values(question)) | {value for word, value in NUMBER_WORDS.items() if word in words}


def rule_check(problem: Problem, question: str) -> str | None:
    """Why the (solution, generated question) pair fails the rule checks (None: it passes)."""
    try:
        float(format_number(problem.answer))
    except ValueError:
        return "answer_malformed"
    missing = given_numbers(problem) - question_numbers(question)
    return "missing_number" if missing else None


def oracle_right(original_question: str, generated: str) -> bool:
    return Counter(number_values(original_question)) == Counter(number_values(generated))


@dataclass
class BTSettings:
    """Attributes:
        rounds: back-translation rounds.
        samples: questions written per solution per round (temperature sampling); the first that closes is kept.
        temperature: their temperature.
        max_new_tokens: question length limit.
        solver_max_new_tokens: the solver's limit.
        batch_size: generation batch size.
        seed: run seed.
        sft: settings of the back-translator's SFT each round (None: the trainer's defaults for writers).
    """

    rounds: int = 3
    samples: int = 2
    temperature: float = 0.7
    max_new_tokens: int = 96
    solver_max_new_tokens: int = 160
    batch_size: int = 64
    seed: int = 0
    sft: "SFTSettings | None" = None


@dataclass
class RoundReport:
    round: int
    solutions: int = 0  # solutions tried this round (not kept before)
    questions: int = 0
    blank: int = 0
    rule_failed: int = 0
    wrong_answer: int = 0
    kept: int = 0
    total_kept: int = 0
    oracle_right: int = 0
    examples: list = field(default_factory=list)  # a few (solution, question, outcome) for reading

    @property
    def closure_rate(self) -> float:
        return self.kept / self.solutions if self.solutions else 0.0

    def to_dict(self) -> dict:
        row = dict(self.__dict__)
        row["closure_rate"] = round(self.closure_rate, 4)
        row["oracle_right_share"] = round(self.oracle_right / self.kept, 4) if self.kept else None
        return row


@dataclass
class BTResult:
    kept: list[Problem] = field(default_factory=list)
    rounds: list[RoundReport] = field(default_factory=list)


def write_questions(writer: Path, solutions: Sequence[Problem], settings: BTSettings,
                    round_index: int) -> tuple[list[list[str]], str]:
    """Questions written for each solution, and the writer's fingerprint."""
    from reasonloop.models import load_generator
    from reasonloop.models.base import SamplingParams, generate_each
    from reasonloop.solve import problem_seed

    fmt = load_prompt_format(writer)
    generator = load_generator(str(writer), batch_size=settings.batch_size)
    requests = [(fmt.message(solution_prompt(s)),
                 SamplingParams(n=settings.samples, temperature=settings.temperature, seed=problem_seed(
                     settings.seed * 1000 + round_index, s.id), max_new_tokens=settings.max_new_tokens, **fmt.decoding()))
                for s in solutions]
    written = [[c.text.strip() if not c.error else "" for c in outs] for outs in generate_each(generator, requests)]
    return written, generator.fingerprint()


def closes(candidates: Sequence[Problem], solver: str | Path, settings: BTSettings) -> list[bool]:
    """The solver's greedy answer to each generated question equals its solution's answer (one verifier)."""
    from reasonloop.search import SolveSettings
    from reasonloop.solve import GeneratorSpec, solve

    if not candidates:
        return []
    solved = solve(candidates, GeneratorSpec(str(solver), options=(("batch_size", settings.batch_size),)),
                   SolveSettings(strategy="greedy", max_new_tokens=settings.solver_max_new_tokens,
                                 batch_size=settings.batch_size, seed=settings.seed),
                   prompt_format=load_prompt_format(solver), label="cycle")
    return solved.correct()


def cycle_round(writer: Path, solver: str | Path, pending: Sequence[Problem], settings: BTSettings,
                round_index: int) -> tuple[list[Problem], RoundReport]:
    report = RoundReport(round_index, solutions=len(pending))
    candidates, owners = [], []
    written, fingerprint = write_questions(writer, pending, settings, round_index) if pending else ([], "")
    for solution, questions in zip(pending, written):
        for question in questions:
            report.questions += 1
            if not question:
                report.blank += 1
            elif rule_check(solution, question):
                report.rule_failed += 1
                note(report, solution, question, rule_check(solution, question))
            else:
                meta = provenance("backtranslate", fingerprint, round=round_index, from_solution=solution.id)
                candidates.append(Problem(question=question, answer=solution.answer, solution=solution.solution,
                                          source="synth:backtranslate", meta=meta))
                owners.append(solution)
    kept: dict[str, Problem] = {}
    for candidate, owner, closed in zip(candidates, owners, closes(candidates, solver, settings)):
        if not closed:
            report.wrong_answer += 1
            note(report, owner, candidate.question, "wrong_answer")
        elif owner.id not in kept:
            right = oracle_right(owner.question, candidate.question)
            report.oracle_right += right
            candidate.meta["synth"]["filters"] = {"cycle": "closed", "rules": "pass"}
            candidate.meta["synth"]["oracle_right"] = right
            kept[owner.id] = candidate
    report.kept = len(kept)
    return list(kept.values()), report


def note(report: RoundReport, solution: Problem, question: str, outcome: str, keep: int = 4) -> None:
    if len(report.examples) < keep:
        report.examples.append({"solution": solution_prompt(solution), "question": question, "outcome": outcome})


def backtranslate(model: str | Path, solver: str | Path, train_problems: Sequence[Problem],
                  solutions: Sequence[Problem], out_dir: str | Path, settings: BTSettings | None = None) -> BTResult:
    """Rounds of: train the back-translator on training pairs + kept pairs, write questions for the
    solutions not kept yet, keep the pairs whose cycle closes."""
    settings = settings or BTSettings()
    if not [p for p in train_problems if p.solution] or not [p for p in solutions if p.solution]:
        raise ReasonloopError("backtranslate: needs training problems with worked solutions and solutions to translate")
    out_dir = Path(out_dir)
    fmt = writer_format(model, BT_FORMAT)
    seed_rows = [(solution_prompt(p), p.question) for p in train_problems if p.solution]
    result = BTResult()
    for round_index in range(1, settings.rounds + 1):
        rows = seed_rows + [(solution_prompt(p), p.question) for p in result.kept]
        writer = train_writer(model, rows, out_dir / f"round-{round_index}" / "writer", fmt, settings.sft)
        done = {p.meta["synth"]["from_solution"] for p in result.kept}
        pending = [s for s in solutions if s.solution and s.id not in done]
        kept, report = cycle_round(writer, solver, pending, settings, round_index)
        result.kept.extend(kept)
        report.total_kept = len(result.kept)
        result.rounds.append(report)
    return result
