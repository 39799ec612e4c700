"""GRPO (Shao et al. 2024) with the verifier as reward, on TRL's GRPOTrainer.

    from reasonloop.train.grpo import GRPOSettings, train_grpo
    train_grpo("runs/rft/round-2", problems, "runs/grpo", GRPOSettings(num_generations=8, beta=0.04))

The reward is `reasonloop.verify.reward.make_reward_function` (1 correct, 0 wrong, None
when the verifier gave up) plus an optional format bonus. A NaN/inf loss, gradient, reward
or KL stops the run with a clear error, keeping the last good checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem
from reasonloop.train import common
from reasonloop.train.registry import register_trainer
from reasonloop.train.sampling import Graded, sample_and_grade, write_graded

PREFLIGHT_ITEMS = 8
FILTER_BATCH = 256  # completions sampled together by the difficulty filter


@dataclass
class GRPOSettings(common.TrainSettings):
    """GRPO settings: the shared optimisation settings (`batch_size` counts completions: prompts x
    `num_generations`) plus

    Attributes:
        num_generations: group size — completions sampled per prompt, compared with each other.
        beta: weight of the KL penalty to the starting model (0 turns it off and skips the reference model).
        temperature: sampling temperature of the group's completions.
        max_completion_length: generation limit per completion, in tokens.
        format_weight: reward bonus for stating a final answer in a recognised form.
        difficulty_filter_k: before training, sample this many completions of each problem from the starting
            model (at `temperature`) and train only on problems with mixed outcomes, some right and some wrong:
            a group whose completions all agree has no advantage to learn from. 0 turns the filter off.
        step_weight: weight of the step reward (`reasonloop.verify.steps`: the share of calculator steps whose
            numbers are grounded in the question and earlier results) beside the verifier's 1/0; 0 turns it off.
        loss_type: TRL GRPO loss ("dapo", "grpo", "dr_grpo", "bnpo", ...).
        max_loss: stop as diverged when the logged loss exceeds this (None: only NaN/inf stop).
        server: the difficulty filter samples from an OpenAI-compatible server holding the starting model
            (…/v1) instead of in this process (GRPO's own rollouts stay in the trainer).
    """

    learning_rate: float = 1e-4
    batch_size: int = 64
    num_generations: int = 8
    beta: float = 0.04
    temperature: float = 1.0
    max_completion_length: int = 192
    format_weight: float = 0.0
    difficulty_filter_k: int = 0
    step_weight: float = 0.0
    loss_type: str = "dapo"
    max_loss: float | None = None
    logging_steps: int = 1
    server: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ValueError(f"GRPOSettings.num_generations must be >= 2 (a group), got {self.num_generations}")
        if self.batch_size % self.num_generations:
            raise ValueError(f"GRPOSettings.batch_size ({self.batch_size}) must be a multiple of "
                             f"num_generations ({self.num_generations})")
        if self.beta < 0 or self.temperature <= 0:
            raise ValueError(f"GRPOSettings: beta must be >= 0 and temperature > 0, got {self.beta}, {self.temperature}")
        if self.difficulty_filter_k < 0 or self.difficulty_filter_k == 1:
            raise ValueError(f"GRPOSettings.difficulty_filter_k must be 0 (off) or >= 2, got {self.difficulty_filter_k}")
        if self.step_weight < 0:
            raise ValueError(f"GRPOSettings.step_weight must be >= 0, got {self.step_weight}")

    def rewards(self) -> tuple[list[Callable], list[float] | None]:
        """The default reward functions and their weights (None: TRL's equal weights)."""
        from reasonloop.verify.reward import make_reward_function
        from reasonloop.verify.steps import make_step_reward

        functions = [make_reward_function(format_weight=self.format_weight)]
        if not self.step_weight:
            return functions, None
        return functions + [make_step_reward()], [1.0, self.step_weight]


def mixed_outcomes(graded: Sequence[Graded]) -> list[Problem]:
    """The problems (in first-seen order) with at least one right and one wrong sample."""
    outcomes: dict[str, tuple[Problem, set[bool]]] = {}
    for item in graded:
        outcomes.setdefault(item.problem.id, (item.problem, set()))[1].add(item.verdict.correct)
    return [problem for problem, seen in outcomes.values() if seen == {True, False}]


def informative_problems(model: str | Path, problems: Sequence[Problem], settings: GRPOSettings,
                         out_dir: Path) -> list[Problem]:
    """The difficulty filter: problems the starting model sometimes solves (samples kept in `out_dir`)."""
    k = settings.difficulty_filter_k
    graded = sample_and_grade(model, problems, k=k, temperature=settings.temperature, seed=settings.seed,
                              max_new_tokens=settings.max_completion_length, batch_size=FILTER_BATCH,
                              server=settings.server)
    write_graded(graded, out_dir / "filter_attempts.jsonl", out_dir / "filter_verdicts.jsonl")
    kept = mixed_outcomes(graded)
    if not kept:
        always = len({g.problem.id for g in graded if g.verdict.correct})
        raise ReasonloopError(f"grpo: no problem has mixed outcomes at k={k} ({always} of {len(problems)} always "
                              f"solved, {len(problems) - always} never) — raise k or temperature, or turn the "
                              "difficulty filter off (difficulty_filter_k=0)")
    return kept


def preflight_rewards(reward_functions: Sequence[Callable], problems: Sequence[Problem], prompt_format) -> None:
    """Score a few reference completions before training: a reward that is None for all of them would
    make every group's advantage undefined, so stop now rather than after the first generations."""
    sample = list(problems[:PREFLIGHT_ITEMS])
    prompts = [prompt_format.message(p.question) for p in sample]
    completions = [common.completion_value(prompt_format.render_target(p.solution, p.answer), prompt_format)
                   for p in sample]
    columns = {"answer": [p.answer for p in sample], "question": [p.question for p in sample]}
    for function in reward_functions:
        scores = function(prompts=prompts, completions=completions, **columns)
        if all(score is None for score in scores):
            name = getattr(function, "__name__", repr(function))
            raise ReasonloopError(f"reward function {name} returned None for all {len(sample)} reference "
                                  "completions checked before training: it cannot score this data")


@register_trainer("grpo", settings=GRPOSettings, help="GRPO with the verifier as reward.")
def train_grpo(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
               settings: GRPOSettings | None = None, reward_functions: Sequence[Callable] | None = None) -> Path:
    """GRPO on `problems` (their `answer` is the reference); returns `out_dir` (a standard HF dir)."""
    settings = settings or GRPOSettings()
    from trl import GRPOConfig, GRPOTrainer

    common.check_problems(problems, "grpo")
    out_dir = Path(out_dir)
    given = len(problems)
    if settings.difficulty_filter_k:
        problems = informative_problems(model, problems, settings, out_dir)
    rewards, weights = (list(reward_functions), None) if reward_functions else settings.rewards()
    loaded = common.load_for_training(model)
    preflight_rewards(rewards, problems, loaded.prompt_format)
    lora = common.use_lora(settings, loaded.model)
    rows = [{"prompt": loaded.prompt_format.message(p.question), "answer": p.answer,
             "question": p.question} for p in problems]
    config = GRPOConfig(**settings.trainer_args(out_dir), per_device_train_batch_size=settings.batch_size,
                        num_generations=settings.num_generations, beta=settings.beta,
                        temperature=settings.temperature, max_completion_length=settings.max_completion_length,
                        loss_type=settings.loss_type, reward_weights=weights)
    guard = common.divergence_guard(settings.max_loss)
    extra = {}
    if loaded.prompt_format.calculator:  # TRL's own sampler cannot answer the model's calculator calls
        from reasonloop.train.rollout import calculator_rollout

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is used on purpose; the warning is noise
        extra["rollout_func"] = calculator_rollout(loaded.prompt_format, temperature=settings.temperature,
                                                   max_new_tokens=settings.max_completion_length, seed=settings.seed)
    return common.fit(GRPOTrainer, "train-grpo", loaded, settings, out_dir, rows, lora=lora, guard=guard,
                      manifest_extra={"n_problems": len(problems), "n_problems_given": given},
                      args=config, reward_funcs=rewards, **extra)
