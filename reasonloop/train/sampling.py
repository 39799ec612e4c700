"""Sample k attempts per problem from a checkpoint and grade them, through the one solve path.

Used by self-training (keep the correct ones), DPO (pair correct with incorrect) and the GRPO
difficulty filter. The checkpoint's saved prompt format is used; the samples come from the
checkpoint itself (hf backend) or from a server that holds it (`server`: an OpenAI-compatible
URL, e.g. `reasonloop serve`, which the caller has loaded with the checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.records import Attempt, Problem, Verdict, write_records
from reasonloop.search import SolveSettings
from reasonloop.models.base import Generator
from reasonloop.solve import SolveCaches, solve

HINT = "{question} (Hint: the answer is {answer}.)"  # STaR rationalization: the answer given in the question


@dataclass
class Graded:
    problem: Problem
    attempt: Attempt
    verdict: Verdict


def sample_and_grade(model_dir: str | Path, problems: Sequence[Problem], *, k: int, temperature: float, seed: int,
                     max_new_tokens: int = 192, batch_size: int = 64, hint: bool = False, server: str | None = None,
                     caches: SolveCaches | None = None) -> list[Graded]:
    """`k` sampled completions per problem, each graded against the problem's answer."""
    from reasonloop.prompts import load_prompt_format

    asked = [p.model_copy(update={"question": HINT.format(question=p.question, answer=p.answer)}) if hint else p
             for p in problems]
    settings = SolveSettings(strategy="sample", n=k, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                             batch_size=batch_size)
    solved = solve(asked, checkpoint_generator(model_dir, server, batch_size), settings, prompt_format=load_prompt_format(model_dir), caches=caches,
                   label="sampling")
    return [Graded(problem, attempt, verdict)
            for problem, result, verdicts in zip(problems, solved.results, solved.verdicts)
            for attempt, verdict in zip(result.candidates, verdicts)]


def checkpoint_generator(model_dir: str | Path, server: str | None, batch_size: int) -> Generator:
    """The checkpoint in this process (hf), or the server that holds it (a fresh client: a server
    that reloaded new weights names them anew, so its fingerprint changes)."""
    from reasonloop.models import load_generator

    if server:
        return load_generator(server, backend="openai")
    return load_generator(str(model_dir), batch_size=batch_size)


def write_graded(graded: Sequence[Graded], attempts_file: Path, verdicts_file: Path) -> None:
    """Save the attempts, then their verdicts (a verdicts file therefore means the attempts are complete)."""
    write_records(attempts_file, [g.attempt for g in graded])
    write_records(verdicts_file, [g.verdict for g in graded])
