"""Reward functions for TRL trainers (GRPO, online DPO, ...), backed by `grade_batch`.

    from reasonloop.verify.reward import make_reward_function
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_function()], train_dataset=ds)

TRL calls `reward(prompts, completions, **columns)` with every dataset column as a keyword
list; the reference answer is read from `answer_column`. Completions may be strings or chat
message lists. Scores: 1.0 correct, 0.0 incorrect or no answer, None when the verifier timed
out or failed (TRL leaves None out of the mean instead of calling it wrong), plus
`format_weight` when the completion states a final answer in a recognised form. Only final
forms count (`\\boxed{}`, `#### N`, `the answer is N`, `A: N`): a completion that stops on
the right number without one earns 0 unless `last_number_fallback=True` (not advised for
training: it rewards unfinished completions).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from reasonloop.verify.extract import extract_answer
from reasonloop.verify.grade import check_arguments, grade_batch, verifier_id

SCORES = {"correct": 1.0, "incorrect": 0.0, "no_answer": 0.0}


def make_reward_function(
    *, answer_column: str = "answer", format_weight: float = 0.0, kind: str = "auto", timeout: float = 5.0,
    last_number_fallback: bool = False,
) -> Callable[..., list[float | None]]:
    """A TRL-compatible reward function named `verifier_reward` (carries `.verifier_version`)."""
    check_arguments(kind, timeout)

    def verifier_reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        references = columns.get(answer_column)
        if references is None:
            raise ValueError(
                f"the reward needs the dataset column {answer_column!r}; columns passed: {sorted(columns) or 'none'}"
            )
        texts = [completion_text(completion) for completion in completions]
        verdicts = grade_batch([(text, str(ref)) for text, ref in zip(texts, references)], kind=kind, timeout=timeout,
                               last_number_fallback=last_number_fallback)
        return [score(verdict.status, text, format_weight) for verdict, text in zip(verdicts, texts)]

    verifier_reward.__name__ = verifier_reward.__qualname__ = "verifier_reward"
    verifier_reward.verifier_version = verifier_id(last_number_fallback)  # type: ignore[attr-defined]
    return verifier_reward


def completion_text(completion: Any) -> str:
    """A plain string, or the assistant text of a chat completion (list of {'role', 'content'})."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        return "\n".join(completion_text(message) for message in completion
                         if not isinstance(message, dict) or message.get("role", "assistant") == "assistant")
    return ""


def score(status: str, text: str, format_weight: float) -> float | None:
    if status not in SCORES:
        return None
    bonus = format_weight if format_weight and extract_answer(text) is not None else 0.0
    return SCORES[status] + bonus
