"""What every trainer shares: settings, loading, datasets, the step log, checkpoints, manifests.

A training run writes into its output directory:

    config.json, model.safetensors, tokenizer files   the trained model (a standard HF dir;
                                                      with LoRA and merge_lora=False: the adapter)
    reasonloop_prompt.json                            the prompt format it was trained with
    train_log.jsonl                                   one row per logged step (loss, learning_rate,
                                                      reward, kl, ... as the trainer reports them)
    manifest.json                                     versions, settings, seeds, fingerprints
    checkpoints/checkpoint-N/                         the last checkpoint: a killed run resumes here
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.prompts import PromptFormat, load_prompt_format
from reasonloop.records import Problem
from reasonloop.text import strip_calculator_annotations

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

TRAIN_LOG = "train_log.jsonl"
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"  # transformers writes it last into a checkpoint
LORA_AUTO_PARAMS = 50_000_000  # above this many parameters, `lora="auto"` trains a LoRA adapter


@dataclass
class TrainSettings:
    """Optimisation settings shared by all trainers (names follow TRL / transformers).

    Attributes:
        learning_rate: peak learning rate (AdamW).
        batch_size: sequences (SFT, DPO) or prompts x generations (GRPO) per optimizer step.
        epochs: passes over the training data; ignored when `max_steps` is set.
        max_steps: a fixed number of optimizer steps (overrides `epochs`); None to use epochs.
        lr_scheduler: transformers scheduler name ("cosine", "linear", "constant", ...).
        warmup_ratio: fraction of the steps spent warming the learning rate up.
        weight_decay: AdamW weight decay.
        adam_beta2: AdamW's second-moment decay (0.95 adapts faster: better for short runs at high learning rates).
        gradient_checkpointing: recompute activations in the backward pass (saves memory on large models,
            costs a third more compute; TRL turns it on by default, the tiny model does not need it).
        max_seconds: stop training after this many seconds (the model trained so far is saved); None: no limit.
        seed: seeds data order, dropout and sampling.
        lora: "auto" (LoRA for models above 50M parameters), True or False.
        lora_r, lora_alpha: LoRA rank and scale.
        merge_lora: save the merged model (a plain HF dir) instead of the adapter alone.
        save_steps: steps between checkpoints (the last one is kept for resuming).
        logging_steps: steps between rows of train_log.jsonl.
        bf16: bf16 mixed precision (GPU); False trains in float32 (CPU default).
        calculator_annotations: keep GSM8K `<<48/2=24>>` annotations in training targets;
            False strips them (shorter targets; the arithmetic stays written out as `48/2 = 24`) unless
            the model's prompt format uses the calculator, which needs them.
    """

    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: float = 1.0
    max_steps: int | None = None
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    adam_beta2: float = 0.999
    max_seconds: float | None = None
    gradient_checkpointing: bool = False
    seed: int = 0
    lora: bool | str = "auto"
    lora_r: int = 16
    lora_alpha: int = 32
    merge_lora: bool = True
    save_steps: int = 200
    logging_steps: int = 10
    bf16: bool = False
    calculator_annotations: bool = False

    def __post_init__(self) -> None:
        positive = {"learning_rate": self.learning_rate, "batch_size": self.batch_size, "epochs": self.epochs,
                    "save_steps": self.save_steps, "logging_steps": self.logging_steps, "lora_r": self.lora_r}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{type(self).__name__}.{name} must be > 0, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"{type(self).__name__}.max_steps must be >= 1 or None, got {self.max_steps}")
        if self.lora not in ("auto", True, False):
            raise ValueError(f"{type(self).__name__}.lora must be 'auto', True or False, got {self.lora!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"{type(self).__name__}.max_seconds must be > 0 or None, got {self.max_seconds}")
        if not 0 < self.adam_beta2 < 1:
            raise ValueError(f"{type(self).__name__}.adam_beta2 must be in (0, 1), got {self.adam_beta2}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"{type(self).__name__}.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def trainer_args(self, out_dir: Path) -> dict[str, Any]:
        """The `transformers.TrainingArguments` fields these settings fix (shared by all TRL configs)."""
        return dict(
            output_dir=str(out_dir / CHECKPOINTS),
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps or -1,
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=self.warmup_ratio,  # transformers 5: a float < 1 is a ratio
            weight_decay=self.weight_decay,
            adam_beta2=self.adam_beta2,
            gradient_checkpointing=self.gradient_checkpointing,
            seed=self.seed,
            data_seed=self.seed,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=1,
            logging_steps=self.logging_steps,
            report_to=[],
            bf16=self.bf16,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )


# ---------------------------------------------------------------- models


@dataclass
class LoadedModel:
    """A model ready to train, with its tokenizer, prompt format and identity."""

    name: str
    model: "PreTrainedModel"
    tokenizer: "PreTrainedTokenizerBase"
    prompt_format: PromptFormat
    fingerprint: str
    source_dir: str | None  # the local directory holding the weights (None for a Hub id)


def load_for_training(model: str | Path) -> LoadedModel:
    """Load weights (directory, .gguf, Hub id) through the hf backend; refuse a tokenizer without pad token."""
    from reasonloop.models.hf import HFGenerator

    generator = HFGenerator(model, device="cpu")
    tokenizer = generator.tokenizer
    if tokenizer.pad_token is None:
        raise ReasonloopError(
            f"model {model}: its tokenizer has no pad token, which batched training needs; "
            "set one (e.g. tokenizer.pad_token = tokenizer.eos_token) and save the tokenizer with the model"
        )
    source = generator.source if Path(generator.source).is_dir() else None
    prompt_format = load_prompt_format(source)
    return LoadedModel(str(model), generator.model.train(), tokenizer, prompt_format, generator.fingerprint(), source)


def use_lora(settings: TrainSettings, model: "PreTrainedModel") -> bool:
    if settings.lora == "auto":
        return model.num_parameters() > LORA_AUTO_PARAMS
    return bool(settings.lora)


def lora_config(settings: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


# ---------------------------------------------------------------- data


def check_problems(problems: Sequence[Problem], what: str, *, need_solutions: bool = False) -> None:
    if not problems:
        raise ReasonloopError(f"{what}: no problems to train on")
    if need_solutions:
        missing = [p.id for p in problems if not (p.solution or "").strip()]
        if missing:
            raise ReasonloopError(
                f"{what}: {len(missing)} of {len(problems)} problems have no worked solution "
                f"(first: id {missing[0]}); SFT needs solutions — use rft to train from answers only"
            )


def target_text(problem: Problem, prompt_format: PromptFormat, *, annotations: bool) -> str:
    solution = problem.solution if annotations or not problem.solution else strip_calculator_annotations(problem.solution)
    return prompt_format.render_target(solution, problem.answer)


def completion_value(text: str, prompt_format: PromptFormat):
    return [{"role": "assistant", "content": text.strip()}] if prompt_format.chat else text


def sft_rows(problems: Sequence[Problem], prompt_format: PromptFormat, *, annotations: bool) -> list[dict]:
    return [
        {"prompt": prompt_format.message(p.question),
         "completion": completion_value(target_text(p, prompt_format, annotations=annotations), prompt_format)}
        for p in problems
    ]


def reasoning_of(completion: str) -> str:
    """A sampled completion's worked solution: the text before its `####` answer line."""
    return completion.rsplit("####", 1)[0].strip()


# ---------------------------------------------------------------- step log & divergence guard


def step_log_callback(path: Path, *, resume_step: int = 0) -> "TrainerCallback":
    """Appends every `logs` dict the trainer reports (numbers only) to `path` as JSON lines."""
    from transformers import TrainerCallback

    path.parent.mkdir(parents=True, exist_ok=True)
    keep_rows_up_to(path, resume_step)

    class StepLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            row = {"step": state.global_step, "epoch": state.epoch}
            row.update({key: value for key, value in (logs or {}).items() if isinstance(value, (int, float))})
            with path.open("a") as log:
                log.write(json.dumps(row) + "\n")

    return StepLog()


def keep_rows_up_to(path: Path, step: int) -> None:
    """On resume: drop log rows of steps after the checkpoint (they will be logged again)."""
    from reasonloop.atomic import atomic_write_text

    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_text(path, "".join(row + "\n" for row in rows))


WATCHED = ("loss", "grad_norm", "reward", "kl")


class Diverged(ReasonloopError):
    """Training produced NaN/inf (or a loss beyond the limit); the last good checkpoint is kept."""


def divergence_guard(max_loss: float | None = None) -> "TrainerCallback":
    """Stops training at the first non-finite logged value (or loss above `max_loss`), before that
    step can be saved; `guard.problem` then says what happened."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        problem: str | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            bad = [f"{key}={value}" for key, value in (logs or {}).items()
                   if key in WATCHED and isinstance(value, float) and not math.isfinite(value)]
            loss = (logs or {}).get("loss")
            if max_loss is not None and isinstance(loss, (int, float)) and loss > max_loss:
                bad.append(f"loss={loss} > max_loss={max_loss}")
            if bad and self.problem is None:
                self.problem = f"step {state.global_step}: {', '.join(bad)}"
                control.should_training_stop = True
                control.should_save = False

        def on_step_end(self, args, state, control, **kwargs):
            if self.problem is not None:
                control.should_save = False

    return DivergenceGuard()


def time_budget(seconds: float | None) -> "TrainerCallback":
    """Stops training once `seconds` have passed since it started (`budget.stopped_at` tells the step)."""
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        stopped_at: int | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if seconds is not None and time.perf_counter() - self.started > seconds and not control.should_training_stop:
                self.stopped_at = state.global_step
                control.should_training_stop = True

    return TimeBudget()


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest checkpoint saved in full. transformers writes `trainer_state.json` last, so a kill
    during a save leaves a newer folder without it (or with half of it): that one is passed over."""
    folder = out_dir / CHECKPOINTS
    saved = [path for path in folder.glob("checkpoint-*") if path.name.split("-", 1)[1].isdigit()
             and checkpoint_state(path) is not None] if folder.is_dir() else []
    return str(max(saved, key=lambda path: checkpoint_step(str(path)))) if saved else None


def checkpoint_state(checkpoint: str | Path) -> dict | None:
    """A checkpoint's `trainer_state.json`, or None when it is missing or cut short."""
    try:
        return json.loads((Path(checkpoint) / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return None


def epoch_start_rng(checkpoint: str | None) -> "TrainerCallback":
    """Keeps the torch RNG state at each epoch's start in the checkpoints and restores it when a run
    resumes mid-epoch, so that the resumed epoch's batch order is the uninterrupted run's.

    Samplers without a generator of their own (SFT's length-grouped batches) draw an epoch's order
    from the global RNG as the epoch starts. transformers restores the RNG of the checkpoint's step
    only after that draw, so without this a run resumed mid-epoch trains on other batches."""
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    saved = ((checkpoint_state(checkpoint) or {}).get("stateful_callbacks", {}).get("EpochStartRng", {})
             .get("attributes", {}) if checkpoint else {})

    class EpochStartRng(TrainerCallback, ExportableState):
        epoch: int | None = None
        rng: str | None = None
        replayed = False

        def state(self) -> dict:  # saved in trainer_state.json with every checkpoint
            return {"args": {}, "attributes": {"epoch": self.epoch, "rng": self.rng}}

        def on_train_begin(self, args, state, control, **kwargs):
            state.stateful_callbacks.setdefault("EpochStartRng", self.state())  # a checkpoint saved without it

        def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
            epoch = state.epoch or 0.0
            if checkpoint and not self.replayed:  # the first epoch of a resumed run
                self.replayed = True
                replay_epoch_draws(train_dataloader, math.floor(epoch))
            # resumed inside the epoch it recorded (at an epoch's end the trainer restores the RNG itself)
            if saved.get("rng") and math.floor(epoch) == saved["epoch"] != epoch:
                torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(saved.pop("rng"))), dtype=torch.uint8))
            self.epoch = math.floor(epoch)
            self.rng = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()

    return EpochStartRng()


def replay_epoch_draws(loader, epochs: int) -> None:
    """A sampler with a generator of its own that it does not reseed per epoch (GRPO's RepeatSampler)
    draws one order per pass from it; a resumed trainer builds it afresh, so make the passes of the
    epochs already trained, and the resumed epoch draws what the uninterrupted run drew."""
    import torch

    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    if isinstance(getattr(sampler, "generator", None), torch.Generator) and not hasattr(sampler, "set_epoch"):
        for _ in range(epochs):
            next(iter(sampler), None)


def checkpoint_step(checkpoint: str | None) -> int:
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0


def run_trainer(trainer, out_dir: Path, guard=None) -> float:
    """Train (resuming from the last checkpoint if there is one); seconds spent training."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the step log goes to train_log.jsonl, not stdout
    checkpoint = last_checkpoint(out_dir)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    if guard is not None and guard.problem:
        kept = last_checkpoint(out_dir)
        raise Diverged(
            f"training stopped, {guard.problem} (diverged); "
            + (f"last good checkpoint kept: {kept}" if kept else "no checkpoint was saved before it")
            + " — lower the learning rate or raise the KL weight, then rerun to resume from it"
        )
    return seconds


# ---------------------------------------------------------------- saving


def save_trained(trainer, loaded: LoadedModel, out_dir: Path, settings: TrainSettings, *, lora: bool) -> Path:
    """Write the final model, tokenizer and prompt format into `out_dir`, each file atomically renamed."""
    model = trainer.model
    if lora and settings.merge_lora:
        model = model.merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as staging:
        model.save_pretrained(staging)
        loaded.tokenizer.save_pretrained(staging)
        loaded.prompt_format.save(staging)
        for item in Path(staging).iterdir():
            os.replace(item, out_dir / item.name)
    return out_dir


def fit(trainer_cls, kind: str, loaded: LoadedModel, settings: TrainSettings, out_dir: Path, rows: list[dict],
        *, lora: bool, guard, manifest_extra: dict[str, Any], **trainer_kwargs: Any) -> Path:
    """Build a TRL trainer with the shared step log and divergence guard, train it (resuming from
    the last checkpoint), save the checkpoint with its prompt format and write its manifest."""
    from datasets import Dataset

    resume_step = checkpoint_step(last_checkpoint(out_dir))
    budget = time_budget(settings.max_seconds)
    trainer = trainer_cls(
        model=loaded.model,
        train_dataset=Dataset.from_list(rows),
        processing_class=loaded.tokenizer,
        peft_config=lora_config(settings) if lora else None,
        callbacks=[step_log_callback(out_dir / TRAIN_LOG, resume_step=resume_step), guard, budget,
                   epoch_start_rng(last_checkpoint(out_dir))],
        **trainer_kwargs,
    )
    seconds = run_trainer(trainer, out_dir, guard)
    save_trained(trainer, loaded, out_dir, settings, lora=lora)
    write_manifest(out_dir, kind, loaded, settings, lora=lora, optimizer_steps=trainer.state.global_step,
                   train_seconds=round(seconds, 1), stopped_by_time_budget=budget.stopped_at is not None,
                   **manifest_extra)
    return out_dir


def write_manifest(out_dir: Path, kind: str, loaded: LoadedModel, settings: Any, **extra: Any) -> Path:
    from reasonloop.atomic import atomic_write_json
    from reasonloop.rundir import make_manifest
    from reasonloop.verify import verifier_id

    manifest = make_manifest(kind=kind, model=loaded.name, model_fingerprint=loaded.fingerprint,
                             verifier_version=verifier_id(), seed=getattr(settings, "seed", None),
                             config=asdict(settings), prompt_format=asdict(loaded.prompt_format),
                             complete=True, **extra)
    return atomic_write_json(out_dir / MANIFEST, manifest, default=str)


def is_complete(out_dir: Path) -> bool:
    path = Path(out_dir) / MANIFEST
    return path.is_file() and json.loads(path.read_text()).get("complete") is True
