"""Sample k attempts per problem from a checkpoint and grade them with the one verifier.

Used by self-training (keep the correct ones) and DPO (pair correct with incorrect).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.records import Attempt, Problem, SamplingRecord, Verdict, write_records
from reasonloop.train.common import prompt_value

HINT = "{question} (Hint: the answer is {answer}.)"  # STaR rationalization: the answer given in the question


@dataclass
class Graded:
    problem: Problem
    attempt: Attempt
    verdict: Verdict


def sample_and_grade(model_dir: str | Path, problems: Sequence[Problem], *, k: int, temperature: float, seed: int,
                     max_new_tokens: int = 192, batch_size: int = 64, hint: bool = False) -> list[Graded]:
    """`k` sampled completions per problem, each graded against the problem's answer."""
    from reasonloop.models.base import SamplingParams
    from reasonloop.models.hf import HFGenerator
    from reasonloop.prompts import load_prompt_format
    from reasonloop.verify import grade_batch

    prompt_format = load_prompt_format(model_dir)
    generator = HFGenerator(model_dir, batch_size=batch_size)
    params = SamplingParams(n=k, temperature=temperature, max_new_tokens=max_new_tokens,
                            seed=seed, **prompt_format.decoding())
    questions = [HINT.format(question=p.question, answer=p.answer) if hint else p.question for p in problems]
    prompts = [prompt_value(q, prompt_format) for q in questions]
    outputs = generator.generate(prompts, params)
    record = SamplingRecord.of(params)
    fingerprint = generator.fingerprint()
    graded_items = [
        (problem, Attempt(problem_id=problem.id, prompt=prompt_format.render_prompt(question), completion=c.text,
                          model=fingerprint, sampling=record, sample_index=i, tokens=c.tokens,
                          finish_reason=c.finish_reason, error=c.error))
        for problem, question, samples in zip(problems, questions, outputs) for i, c in enumerate(samples)
    ]
    verdicts = grade_batch([(attempt.completion, problem.answer) for problem, attempt in graded_items])
    return [Graded(problem, attempt, verdict.model_copy(update={"problem_id": problem.id,
                                                                 "sample_index": attempt.sample_index}))
            for (problem, attempt), verdict in zip(graded_items, verdicts)]


def write_graded(graded: Sequence[Graded], attempts_file: Path, verdicts_file: Path) -> None:
    """Save the attempts, then their verdicts (a verdicts file therefore means the attempts are complete)."""
    write_records(attempts_file, [g.attempt for g in graded])
    write_records(verdicts_file, [g.verdict for g in graded])
