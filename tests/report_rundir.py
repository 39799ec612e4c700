"""Run directories for the report tests: real GSM8K problems, records written with the
run-directory writer (`reasonloop.rundir`), metrics from `compute_metrics`,
verdict statuses drawn with a seed.

Completions are built from each problem's own reference solution (right or wrong final
answer, or none), and some hold hostile HTML, so the report's escaping is tested on
exactly what a model could write.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from reasonloop.evaluate.metrics import compute_metrics
from reasonloop.rundir import make_manifest, write_run
from reasonloop.records import Attempt, Problem, Verdict
from reasonloop.sources.datasets import load_problems
from reasonloop.text import gsm8k_rationale

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 1"></pre></script><!--'
STATUS_WEIGHTS = {"correct": 0.45, "incorrect": 0.3, "no_answer": 0.15, "timeout": 0.05, "error": 0.05}


def gsm8k_problems(shared_data: Path, start: int, count: int) -> list[Problem]:
    return load_problems(shared_data / "gsm8k/test.jsonl", preset="gsm8k").records[start:start + count]


def completion_for(problem: Problem, status: str, rng: random.Random) -> tuple[str, str | None]:
    """(completion text, extracted answer) for a wanted verdict status."""
    rationale = gsm8k_rationale(problem.solution or "")
    if status == "correct":
        return f"{rationale}\nThe answer is \\boxed{{{problem.answer}}}.", problem.answer
    if status == "incorrect":
        wrong = str(int(float(problem.answer)) + rng.randint(1, 9))
        return f"{rationale}\nSo the answer is \\boxed{{{wrong}}}. {HOSTILE}", wrong
    if status == "no_answer":
        return rationale[: len(rationale) // 2] + f" {HOSTILE}", None
    return f"{rationale}\n\\boxed{{\\frac{{1}}{{0}}}}", "\\frac{1}{0}"


def with_template_meta(problem: Problem, number: int, sets: int) -> Problem:
    """Give GSM8K problems the meta template problems carry, so robustness and by_steps have data:
    `sets` instances per template, and every fifth problem a perturbed variant."""
    steps = len(gsm8k_rationale(problem.solution or "").splitlines())
    perturbation = ("rename", "renumber", "add_clause")[number // 5 % 3] if number % 5 == 4 else None
    meta = {"template": f"t{number // sets}", "index": number % sets, "steps": steps}
    return problem.model_copy(update={"meta": {**meta, "perturbation": perturbation} if perturbation else meta})


def make_run(shared_data: Path, run_dir: Path, *, problems: int = 60, samples: int = 4, start: int = 0,
             suite: str = "gsm8k", seed: int = 0, model: str = "tiny-llama", strategy: str = "sample",
             status_weights: dict[str, float] = STATUS_WEIGHTS, **manifest_extra) -> Path:
    """Write a complete eval run directory and return its path."""
    rng = random.Random(seed)
    chosen = [with_template_meta(p, start + n, sets=10) for n, p in enumerate(gsm8k_problems(shared_data, start, problems))]
    attempts, verdicts = [], []
    statuses, weights = list(status_weights), list(status_weights.values())
    for problem in chosen:
        prompt = f"Solve the problem and put the final answer in \\boxed{{}}.\n\nQuestion: {problem.question}\nAnswer:"
        for index in range(samples):
            status = rng.choices(statuses, weights)[0]
            completion, extracted = completion_for(problem, status, rng)
            attempts.append(Attempt(problem_id=problem.id, prompt=prompt, completion=completion, model=model,
                                    sample_index=index, tokens=len(completion.split()) + rng.randint(0, 40),
                                    finish_reason="length" if status == "no_answer" else "stop"))
            verdicts.append(Verdict(status=status, extracted=extracted, reference=problem.answer,
                                    reason=f"fixture verdict: {status}", verifier="fixture-0",
                                    problem_id=problem.id, sample_index=index))
    manifest = make_manifest(suite=suite, model=model, model_fingerprint=f"{model}-{seed}", verifier_version="fixture-0",
                             strategy=strategy, sampling={"n": samples, "temperature": 0.7 if samples > 1 else 0.0},
                             seed=seed, **manifest_extra)
    metrics = compute_metrics(chosen, attempts, verdicts, suite=suite, strategy=strategy, seed=seed)
    return write_run(run_dir, manifest=manifest, problems=chosen, attempts=attempts, verdicts=verdicts, metrics=metrics)


def add_train_log(run_dir: Path, steps: int = 40, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows = [{"step": step, "loss": 2.5 * 0.95 ** step + rng.uniform(0, 0.1), "learning_rate": 1e-4 * (1 - step / steps),
             "reward": 0.2 + 0.5 * step / steps + rng.uniform(-0.05, 0.05), "kl": 0.01 * step,
             "accuracy": 0.2 + 0.4 * step / steps} for step in range(1, steps + 1)]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def verdict_counts(run_dir: Path) -> Counter:
    """Status counts straight from verdicts.jsonl (what the viewer's filters must match)."""
    lines = (run_dir / "verdicts.jsonl").read_text().splitlines()
    return Counter(json.loads(line)["status"] for line in lines if line.strip())


# ---------------------------------------------------------------- a quickstart-shaped run directory

# recipes/quickstart.yaml: three evaluate stages (the model each evaluates), two problem sets each
QUICKSTART_EVALS = (("eval_sft", "sft"), ("eval_self_train", "self_train"), ("eval_grpo", "grpo"))
QUICKSTART_SETS = {"heldout": 0, "heldout_renamed": 300}  # where each set's GSM8K slice starts


def make_quickstart_runs(shared_data: Path, run_dir: Path, *, problems: int = 60) -> list[Path]:
    """The run directories the quickstart's report stage reads, in its order (`runs: [eval_sft,
    eval_self_train, eval_grpo, sft, self_train, grpo]`), laid out as `reasonloop.pipeline` writes
    them: RUN/eval_X/eval_X.SET (greedy, one sample a problem; later stages right more often),
    RUN/sft/model, RUN/self_train/model/round-2 (the last round's fine-tuning), RUN/grpo/model."""
    dirs = []
    for step, (stage, model) in enumerate(QUICKSTART_EVALS):
        right = 0.35 + 0.15 * step
        weights = {"correct": right, "incorrect": 0.9 - right, "no_answer": 0.1}
        for number, (name, start) in enumerate(QUICKSTART_SETS.items()):
            dirs.append(make_run(shared_data, run_dir / stage / f"{stage}.{name}", problems=problems, samples=1,
                                 start=start, suite=name, seed=10 * step + number, model=f"{run_dir}/{model}/model",
                                 strategy="greedy", status_weights=weights, stage=stage,
                                 config={"model": model, "problems": list(QUICKSTART_SETS), "max_new_tokens": 160}))
    return dirs + [make_sft_run(run_dir / "sft" / "model"), make_rft_round(run_dir / "self_train" / "model" / "round-2"),
                   make_grpo_run(run_dir / "grpo" / "model")]


def write_training_run(run_dir: Path, kind: str, config: dict, rows: list[dict], **extra) -> Path:
    """A trainer's output as `reasonloop.train.common.fit` leaves it: manifest and step log, no metrics."""
    from reasonloop.rundir import write_manifest

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_manifest(run_dir, make_manifest(kind=kind, model=str(run_dir.parent), model_fingerprint=f"{kind}-fp",
                                          verifier_version="fixture-0", seed=0, config=config, complete=True, **extra))
    return run_dir


def make_sft_run(run_dir: Path, steps: int = 800) -> Path:
    config = {"learning_rate": 0.005, "batch_size": 24, "max_steps": steps, "adam_beta2": 0.95, "warmup_ratio": 0.05,
              "lr_scheduler": "cosine", "seed": 0, "lora": "auto"}
    rows = [{"step": step, "epoch": step / 100, "loss": 3.0 * 0.996 ** step + 0.3, "grad_norm": 1.0,
             "learning_rate": 0.005 * (1 - step / steps)} for step in range(10, steps + 1, 10)]
    return write_training_run(run_dir, "train-sft", config, rows, optimizer_steps=steps, train_seconds=95.4,
                              stopped_by_time_budget=False)


def make_rft_round(run_dir: Path, steps: int = 60) -> Path:
    config = {"learning_rate": 0.001, "batch_size": 32, "epochs": 2, "max_steps": None, "seed": 1000}
    rows = [{"step": step, "epoch": step / 30, "loss": 0.9 - 0.002 * step, "learning_rate": 0.001}
            for step in range(5, steps + 1, 5)]
    return write_training_run(run_dir, "train-sft", config, rows, optimizer_steps=steps, train_seconds=21.0,
                              stopped_by_time_budget=False)


def make_grpo_run(run_dir: Path, steps: int = 24) -> Path:
    config = {"learning_rate": 0.0001, "batch_size": 64, "num_generations": 8, "beta": 0.04, "max_steps": steps,
              "max_completion_length": 160, "seed": 0}
    rows = [{"step": step, "loss": 0.01, "reward": 0.4 + 0.005 * step, "reward_std": 0.3, "kl": 0.001 * step,
             "learning_rate": 0.0001, "completions/mean_length": 80.0} for step in range(1, steps + 1)]
    return write_training_run(run_dir, "train-grpo", config, rows, optimizer_steps=steps, train_seconds=140.2,
                              stopped_by_time_budget=False)
