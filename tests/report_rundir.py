"""Run directories for the report tests: real GSM8K problems, records written with the
run-directory writer (`reasonloop.evaluate.rundir`), metrics from `compute_metrics`,
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
from reasonloop.evaluate.rundir import make_manifest, write_run
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
             suite: str = "gsm8k", seed: int = 0, model: str = "tiny-llama") -> Path:
    """Write a complete eval run directory and return its path."""
    rng = random.Random(seed)
    chosen = [with_template_meta(p, start + n, sets=10) for n, p in enumerate(gsm8k_problems(shared_data, start, problems))]
    attempts, verdicts = [], []
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
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
                             strategy="sample", sampling={"n": samples, "temperature": 0.7}, seed=seed)
    metrics = compute_metrics(chosen, attempts, verdicts, suite=suite, strategy="sample", seed=seed)
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
