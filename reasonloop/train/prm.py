"""Process (PRM) and outcome (ORM) reward models: Math-Shepherd labels and training.

Labels (Math-Shepherd, Wang et al. 2024), all on the one solve path:
1. sample `solutions` solutions per problem from the model (`CachedSampler.sample`);
2. cut each into steps (`reasonloop.search.steps`); from each step prefix but the last, draw
   `completions` continuations (`CachedSampler.continue_texts`: seeded and cached) and grade
   prefix + continuation with the shared verifier;
3. a step's hard label is 1 when any continuation verifies, its soft label the share that
   do; the last step's label is the solution's own verdict.

Extra data (optional, `gold_swaps`; `gold_labels` + `corrupted_labels`): the problems' worked
solutions, every step good, and copies in which one operand is swapped for another question
number and every later step recomputed (`evaluate.processbench.corrupt`), good before the
changed step and wrong from it on: the wrong-operand errors the tiny generator makes.
`corrupted_labels` also corrupts the model's own right samples, and with `slips` puts a number
the question lacks in place of the operand; on the development set neither helped best-of-n,
and the development set's best mix (Math-Shepherd labels + gold swaps) fell below greedy on the
confirmation set (docs/results.md). The ProcessBench-style benchmark's errors are made the same
way: a PRM trained with swaps is not scored on it as a learned-from-samples PRM.

Training: the model with a two-class token head (`AutoModelForTokenClassification`),
trained by transformers' `Trainer` with cross-entropy at the last token of each step
(`reward.step_positions`; every other token is -100). The PRM learns every step's hard
label; the ORM (`kind="orm"`) only the last step's, i.e. the outcome. Soft labels are
kept in `labels.jsonl` but not trained on (the two-class head takes hard labels).

    from reasonloop.train.prm import PRMSettings, train_prm
    train_prm("runs/sft", problems, "runs/prm", PRMSettings(kind="prm", solutions=4, completions=4))
    # -> runs/prm: weights, tokenizer, reasonloop_reward.json, labels.jsonl, manifest.json
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reasonloop.atomic import atomic_write_text
from reasonloop.errors import ReasonloopError
from reasonloop.prompts import PromptFormat
from reasonloop.records import Problem
from reasonloop.search import SolveSettings
from reasonloop.search.reward import REWARD_FILE, step_positions
from reasonloop.search.steps import NO_STEPS, split_steps
from reasonloop.solve import CachedSampler, SolveCaches, directory_caches, grade_attempts
from reasonloop.train import common
from reasonloop.train.registry import register_trainer

LABELS_FILE = "labels.jsonl"


@dataclass
class PRMSettings(common.TrainSettings):
    """Reward-model training (all TrainSettings fields apply; defaults for a tiny model).

    Attributes:
        kind: prm (a label per step) or orm (only the outcome, at the last step).
        solutions: solutions sampled per problem to label.
        completions: continuations drawn from each step prefix (Math-Shepherd's N).
        temperature, max_new_tokens: sampling of solutions and continuations.
        sample_batch_size: problems per generation batch.
        max_length: tokens of prompt + solution kept (from the end).
        gold_swaps: each problem's worked solution (all steps good) and up to this many copies with an
            operand swapped for another question number (wrong from that step on) added to the data.
    """

    kind: str = "prm"
    solutions: int = 4
    completions: int = 4
    temperature: float = 0.8
    max_new_tokens: int = 256
    sample_batch_size: int = 64
    max_length: int = 512
    learning_rate: float = 3e-4
    batch_size: int = 16
    epochs: float = 2.0
    lora: bool | str = False
    gold_swaps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ("prm", "orm"):
            raise ValueError(f"PRMSettings.kind must be 'prm' or 'orm', got {self.kind!r}")
        if self.gold_swaps < 0:
            raise ValueError(f"PRMSettings.gold_swaps must be >= 0, got {self.gold_swaps}")
        for name in ("solutions", "completions", "max_new_tokens", "sample_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"PRMSettings.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class StepLabels:
    """One labelled solution: its steps and per step the hard and soft Math-Shepherd labels."""

    problem_id: str
    prompt: str
    steps: list[str]
    hard: list[int] = field(default_factory=list)
    soft: list[float] = field(default_factory=list)
    outcome: bool = False
    error: str | None = None  # NO_STEPS, or the generation's error: not trained on


def shepherd_labels(problems: Sequence[Problem], sampler: CachedSampler, settings: SolveSettings, *,
                    solutions: int, completions: int, caches: SolveCaches | None = None) -> list[StepLabels]:
    """Math-Shepherd labels of `solutions` sampled solutions per problem (see the module doc)."""
    problems = list(problems)
    drawn = [a for attempts in sampler.sample(problems, solutions, settings) for a in attempts]
    verdicts = grade_attempts(problems, drawn, caches=caches, label="grading solutions")
    by_id = {p.id: p for p in problems}
    labelled = [StepLabels(a.problem_id, a.prompt, split_steps(a.completion), outcome=v.correct,
                           error=a.error or (None if a.completion.strip() else NO_STEPS)) for a, v in zip(drawn, verdicts)]
    jobs = [(item, i) for item in labelled if not item.error for i in range(len(item.steps) - 1)]
    prefixes = ["".join(item.steps[: i + 1]) for item, i in jobs]
    continued = sampler.continue_texts([(by_id[item.problem_id], prefix) for (item, _), prefix in zip(jobs, prefixes)],
                                       completions, settings, salt="shepherd") if jobs else []
    whole = [a.model_copy(update={"completion": prefix + a.completion})
             for prefix, attempts in zip(prefixes, continued) for a in attempts]
    graded = iter(grade_attempts(problems, whole, caches=caches, label="grading continuations"))
    shares: dict[tuple[int, int], float] = {}
    for (item, i), attempts in zip(jobs, continued):
        shares[(id(item), i)] = sum(next(graded).correct for _ in attempts) / len(attempts)
    for item in labelled:
        if item.error:
            continue
        item.soft = [shares[(id(item), i)] for i in range(len(item.steps) - 1)] + [float(item.outcome)]
        item.hard = [int(share > 0) for share in item.soft]
    return labelled


def gold_labels(problems: Sequence[Problem], fmt: PromptFormat) -> list[StepLabels]:
    """The problems' own worked solutions (in `fmt`'s target format) as labelled solutions, every step good;
    problems without a solution give nothing. Sources for `corrupted_labels` where no samples are right."""
    labelled = []
    for problem in problems:
        if problem.solution:
            steps = split_steps(fmt.render_target(problem.solution, problem.answer))
            labelled.append(StepLabels(problem.id, fmt.render_prompt(problem.question), steps, [1] * len(steps),
                                       [1.0] * len(steps), outcome=True))
    return labelled


def corrupted_labels(labels: Sequence[StepLabels], problems: Sequence[Problem], swaps: int, *, slips: int = 0,
                     seed: int = 0) -> list[StepLabels]:
    """Wrong copies of the verified-correct labelled solutions: up to `swaps` distinct copies with an
    operand swapped for another question number and up to `slips` with an operand replaced by a
    number the question does not hold, later steps recomputed; steps 1 before the change, 0 from it on."""
    from reasonloop.evaluate.processbench import corrupt, first_changed_step

    rng = random.Random(seed)
    by_id = {p.id: p for p in problems}
    copies = []
    for item in labels:
        if item.error or not item.outcome:
            continue
        text = "".join(item.steps)
        seen = {text}
        for slip in [False] * swaps + [True] * slips:
            wrong, _reason = corrupt(by_id[item.problem_id], text, rng, slip=slip)
            if wrong is None or wrong in seen:
                continue
            seen.add(wrong)
            steps = split_steps(wrong)
            first = first_changed_step(item.steps, steps)
            hard = [int(i < first) for i in range(len(steps))]
            copies.append(StepLabels(item.problem_id, item.prompt, steps, hard, [float(h) for h in hard], outcome=False))
    return copies


def training_rows(labels: Sequence[StepLabels], tokenizer: Any, kind: str, max_length: int) -> list[dict]:
    """Token ids with the label at the last token of each step (PRM) or of the last step (ORM)."""
    rows = []
    for item in labels:
        if item.error:
            continue
        ids, positions = step_positions(tokenizer, item.prompt, item.steps, max_length)
        targets = [-100] * len(ids)
        marks = list(zip(positions, item.hard)) if kind == "prm" else [(positions[-1], int(item.outcome))]
        for position, label in marks:
            targets[position] = label
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": targets})
    return rows


def fit_reward_model(base: str | Path, rows: list[dict], out_dir: Path, settings: PRMSettings) -> Path:
    """Train a two-class token head on `base` with transformers' Trainer; save it with its reward file."""
    from datasets import Dataset
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(base, num_labels=2)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    args = TrainingArguments(**settings.trainer_args(out_dir), per_device_train_batch_size=settings.batch_size,
                             remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer)
    common.run_trainer(trainer, out_dir)
    trainer.model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_text(out_dir / REWARD_FILE, json.dumps({"kind": settings.kind, "base": str(base)}) + "\n")
    return out_dir


def write_labels(path: Path, labels: Sequence[StepLabels]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(asdict(item)) + "\n" for item in labels))


@register_trainer("prm", settings=PRMSettings,
                  help="Process (or outcome, kind=orm) reward model from Math-Shepherd labels of the model's own samples.")
def train_prm(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
              settings: PRMSettings | None = None) -> Path:
    """Label `model`'s samples of `problems` (Math-Shepherd) and train a reward model from `model` on them."""
    from reasonloop.models import load_generator
    from reasonloop.prompts import load_prompt_format

    settings = settings or PRMSettings()
    common.check_problems(problems, "prm")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = load_generator(str(model), batch_size=settings.sample_batch_size)
    caches = directory_caches(out_dir / "cache")
    sampler = CachedSampler(generator, load_prompt_format(model), generator.fingerprint(), caches, label="labelling")
    solve_settings = SolveSettings(strategy="sample", n=settings.solutions, temperature=settings.temperature,
                                   max_new_tokens=settings.max_new_tokens, seed=settings.seed,
                                   batch_size=settings.sample_batch_size)
    labels = shepherd_labels(problems, sampler, solve_settings, solutions=settings.solutions,
                             completions=settings.completions, caches=caches)
    if settings.gold_swaps:
        golds = gold_labels(problems, load_prompt_format(model))
        labels += golds + corrupted_labels(golds, problems, settings.gold_swaps, seed=settings.seed)
    write_labels(out_dir / LABELS_FILE, labels)
    rows = training_rows(labels, generator.tokenizer, settings.kind, settings.max_length)
    if not rows:
        raise ReasonloopError(f"prm: none of the {len(labels)} sampled solutions has steps to label")
    return fit_reward_model(model, rows, out_dir, settings)
