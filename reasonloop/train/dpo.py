"""DPO (Rafailov et al. 2023) on verified preference pairs, with TRL's DPOTrainer.

For each training problem the model samples `k` attempts; a pair is a verified-correct
attempt (chosen) and an incorrect one (rejected) for the same problem. The reference
model is an explicit frozen copy of the starting model.

    from reasonloop.train.dpo import DPOSettings, train_dpo
    train_dpo("runs/rft/round-2", problems, "runs/dpo", DPOSettings(beta=0.1))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem
from reasonloop.train import common
from reasonloop.train.registry import register_trainer
from reasonloop.train.sampling import Graded, sample_and_grade, write_graded


@dataclass
class DPOSettings(common.TrainSettings):
    """DPO settings: the shared optimisation settings plus

    Attributes:
        beta: strength of the implicit KL constraint to the reference model.
        loss_type: TRL DPO loss ("sigmoid", "ipo", "hinge", ...).
        k: attempts sampled per problem to find pairs.
        temperature: sampling temperature of those attempts.
        pairs_per_problem: at most this many (chosen, rejected) pairs per problem.
        max_new_tokens: generation limit per attempt.
        max_length: longest tokenized prompt + completion kept.
        server: sample the attempts from an OpenAI-compatible server holding the starting model (…/v1)
            instead of in this process.
    """

    learning_rate: float = 5e-5
    batch_size: int = 16
    beta: float = 0.1
    loss_type: str = "sigmoid"
    k: int = 4
    temperature: float = 0.8
    pairs_per_problem: int = 1
    max_new_tokens: int = 192
    max_length: int = 512
    server: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 2 or self.pairs_per_problem < 1 or self.beta <= 0:
            raise ValueError(f"DPOSettings: need k >= 2, pairs_per_problem >= 1, beta > 0; got k={self.k}, "
                             f"pairs_per_problem={self.pairs_per_problem}, beta={self.beta}")


def preference_pairs(graded: Sequence[Graded], pairs_per_problem: int) -> list[tuple[Problem, str, str]]:
    """(problem, chosen, rejected): distinct correct and incorrect completions of the same problem."""
    by_problem: dict[str, tuple[Problem, list[str], list[str]]] = {}
    for item in graded:
        _, right, wrong = by_problem.setdefault(item.problem.id, (item.problem, [], []))
        if item.verdict.status == "correct":
            bucket = right
        elif item.verdict.status in ("incorrect", "no_answer"):  # a grader failure is neither
            bucket = wrong
        else:
            continue
        if item.attempt.completion.strip() and item.attempt.completion not in bucket:
            bucket.append(item.attempt.completion)
    return [(problem, chosen, rejected) for problem, right, wrong in by_problem.values()
            for chosen, rejected in list(zip(right, wrong))[:pairs_per_problem]]


@register_trainer("dpo", settings=DPOSettings,
                  help="DPO on verified-correct vs incorrect attempts of the same problems.")
def train_dpo(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
              settings: DPOSettings | None = None) -> Path:
    """Sample, pair, and train with DPO; returns `out_dir` (a standard HF dir)."""
    settings = settings or DPOSettings()
    from trl import DPOConfig, DPOTrainer

    common.check_problems(problems, "dpo")
    out_dir = Path(out_dir)
    graded = sample_and_grade(model, problems, k=settings.k, temperature=settings.temperature, seed=settings.seed,
                              max_new_tokens=settings.max_new_tokens, server=settings.server)
    write_graded(graded, out_dir / "attempts.jsonl", out_dir / "verdicts.jsonl")
    pairs = preference_pairs(graded, settings.pairs_per_problem)
    if not pairs:
        solved = len({g.problem.id for g in graded if g.verdict.correct})
        raise ReasonloopError(f"dpo: no preference pairs (a verified-correct and an incorrect attempt of the same "
                              f"problem) among {len(problems)} problems at k={settings.k}; {solved} had a correct "
                              "attempt — raise k or temperature, or start from a model that solves some of them")
    loaded = common.load_for_training(model)
    lora = common.use_lora(settings, loaded.model)
    reference = None if lora else common.load_for_training(model).model.eval()  # LoRA: the adapter-free base
    fmt = loaded.prompt_format
    rows = [{"prompt": fmt.message(p.question), "chosen": common.completion_value(chosen, fmt),
             "rejected": common.completion_value(rejected, fmt)} for p, chosen, rejected in pairs]
    config = DPOConfig(**settings.trainer_args(out_dir), per_device_train_batch_size=settings.batch_size,
                       beta=settings.beta, loss_type=[settings.loss_type], max_length=settings.max_length)
    guard = common.divergence_guard()
    return common.fit(DPOTrainer, "train-dpo", loaded, settings, out_dir, rows, lora=lora, guard=guard,
                      manifest_extra={"n_problems": len(problems), "pairs": len(pairs)}, args=config, ref_model=reference)
