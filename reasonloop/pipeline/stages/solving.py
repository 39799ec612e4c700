"""The per-item stages: solve (sample), verify (grade) and evaluate (metrics and a run directory per problem set).

All three go through the one solve path (`reasonloop.solve`) with the run's caches and executor.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reasonloop.cache import item_key
from reasonloop.pipeline.contract import RunContext, StageConfig, StageOutput, fingerprint_path, register_stage
from reasonloop.prompts import PromptFormat, load_prompt_format
from reasonloop.records import Attempt, Problem, load, write_records
from reasonloop.search import SolveSettings
from reasonloop.search.base import StrategyName, strategy_model_paths
from reasonloop.solve import (CachedSampler, GeneratorSpec, SolveCaches, Solved, grade_attempts, prepare,
                              sampling_params, solve)


def run_caches(ctx: RunContext) -> SolveCaches:
    """The solve path's caches in the run's cache folder, batches on the run's executor."""
    return SolveCaches(cache_for=ctx.cache, runner=ctx.executor, progress=ctx.progress,
                       on_cache=ctx.report_corruption)


def model_prompt_format(model: StageOutput) -> PromptFormat:
    """The prompt format saved with a local model (the chat format for servers, Hub ids, models without one)."""
    return load_prompt_format(model.path if Path(model.path).is_dir() else None)


def generator_spec(model: StageOutput, backend: str, batch_size: int) -> GeneratorSpec:
    local = () if model.meta.get("remote") else (("batch_size", batch_size),)
    return GeneratorSpec(model.path, backend, local)


def grade_options(kind: str, last_number_fallback: bool, timeout: float = 5.0) -> dict[str, Any]:
    """Keyword arguments of `verify.grade_batch` (part of the verify cache's keys)."""
    return {"kind": kind, "timeout": timeout, "last_number_fallback": last_number_fallback}


LAST_NUMBER_HELP = "Also take a completion's last number when it states no final answer (for models without the format)."


class SamplingFields(StageConfig):
    version: ClassVar = "2"  # 2: the model's calculator is used, and attempts record it

    samples: int = Field(1, ge=1, description="Completions per problem.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(64, ge=1, description="Problems per batch (and per cache shard).")
    backend: Literal["auto", "hf", "openai", "vllm"] = Field("auto", description="Model backend.")
    limit: int | None = Field(None, ge=1, description="Only the first N problems.")

    def solve_settings(self, seed: int, strategy: str) -> SolveSettings:
        return SolveSettings(strategy=strategy, n=self.samples, temperature=self.temperature, top_p=self.top_p,
                             max_new_tokens=self.max_new_tokens, seed=seed, batch_size=self.batch_size)

    def solve(self, ctx: RunContext, model: StageOutput, problems: list[Problem], seed: int, *, strategy: str,
              label: str, grading: dict[str, Any]) -> Solved:
        return solve(problems, generator_spec(model, self.backend, self.batch_size),
                     self.solve_settings(seed, strategy), prompt_format=model_prompt_format(model),
                     fingerprint=model.fingerprint, caches=run_caches(ctx), grade_options=grading, label=label)


@register_stage("solve")
class SolveStage(SamplingFields):
    """Sample completions for each problem (cached per problem)."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}
    produces: ClassVar = "attempts"
    itemized: ClassVar = True

    model: str = Field(description="Model stage or 'base'.")
    problems: str = Field(description="Problems stage.")

    def run(self, ctx, inputs, out_dir, seed):
        problems = load(inputs["problems"].path, Problem)[: self.limit]
        strategy = "greedy" if self.samples == 1 and self.temperature == 0 else "sample"
        sampler = CachedSampler(generator_spec(inputs["model"], self.backend, self.batch_size),
                                model_prompt_format(inputs["model"]), inputs["model"].fingerprint, run_caches(ctx),
                                label=self.name)
        settings = prepare(self.solve_settings(seed, strategy))[1]
        attempts = [a for samples in sampler.sample(problems, settings.n, settings) for a in samples]
        path = write_records(out_dir / "attempts.jsonl", attempts)
        return StageOutput("attempts", str(path), fingerprint_path(path), {"problems": inputs["problems"].path})


@register_stage("verify")
class VerifyStage(StageConfig):
    """Grade every attempt with the shared verifier (cached per completion and reference)."""

    refs: ClassVar = {"attempts": ("attempts",)}
    produces: ClassVar = "verdicts"
    itemized: ClassVar = True

    attempts: str = Field(description="Solve stage.")
    grader: Literal["auto", "math", "numeric"] = Field("auto", description="Answer kind for the grader.")
    timeout: float = Field(5.0, gt=0, description="Seconds per item before the verdict is 'timeout'.")
    batch_size: int = Field(256, ge=1, description="Attempts per batch (and per cache shard).")
    last_number_fallback: bool = Field(False, description=LAST_NUMBER_HELP)

    def run(self, ctx, inputs, out_dir, seed):
        source = inputs["attempts"]
        attempts, problems = load(source.path, Attempt), load(source.meta["problems"], Problem)
        verdicts = grade_attempts(problems, attempts, caches=run_caches(ctx), label=self.name,
                                  options=grade_options(self.grader, self.last_number_fallback, self.timeout))
        path = write_records(out_dir / "verdicts.jsonl", verdicts)
        summary = {"correct": round(sum(v.correct for v in verdicts) / max(len(verdicts), 1), 4)}
        return StageOutput("verdicts", str(path), fingerprint_path(path),
                           {"attempts": source.path, "problems": source.meta["problems"], "summary": summary})


@register_stage("evaluate")
class EvaluateStage(SamplingFields):
    """Accuracy (and pass@k, robustness) of a model on problem sets; one run directory each."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}
    produces: ClassVar = "eval"
    itemized: ClassVar = True

    model: str = Field(description="Model stage or 'base'.")
    problems: list[str] = Field(description="Problems stages, each evaluated as one suite.")
    strategy: StrategyName = Field("greedy", description="A registered strategy (`reasonloop strategies`): how candidates are "
                                                "drawn and one answer chosen.")
    budget: int | None = Field(None, gt=0, description="Generated tokens the strategy may spend per problem.")
    grader: Literal["auto", "math", "numeric"] = "auto"
    last_number_fallback: bool = Field(False, description=LAST_NUMBER_HELP)

    def preflight(self) -> None:
        prepare(self.solve_settings(0, self.strategy))

    def cache_settings(self) -> dict[str, Any]:
        """The settings plus the content fingerprint of each model the strategy names (a reward model
        retrained at the same path must not reuse the old results); a name that is no local path
        (a URL, a hub id) is keyed by its text."""
        models = strategy_model_paths(self.strategy)
        fingerprints = {path: fingerprint_path(path) if Path(path).exists() else path for path in models}
        return {**super().cache_settings(), **({"strategy_models": fingerprints} if models else {})}

    def solve_settings(self, seed: int, strategy: str) -> SolveSettings:
        return replace(super().solve_settings(seed, strategy), budget=self.budget)

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.evaluate.metrics import compute_metrics
        from reasonloop.rundir import make_manifest, write_run

        model, summary = inputs["model"], {}
        fmt = model_prompt_format(model)
        settings = prepare(self.solve_settings(seed, self.strategy))[1]
        params = sampling_params(settings, fmt, settings.n)
        for name, source in zip(self.problems, inputs["problems"]):
            problems = load(source.path, Problem)[: self.limit]
            solved = self.solve(ctx, model, problems, seed, strategy=self.strategy, label=f"{self.name}:{name}",
                                grading=grade_options(self.grader, self.last_number_fallback))
            attempts, verdicts = solved.attempts, solved.all_verdicts
            metrics = compute_metrics(problems, attempts, verdicts, suite=name, strategy=self.strategy, seed=seed)
            manifest = make_manifest(kind="eval", suite=name, model=model.path, model_fingerprint=model.fingerprint,
                                     verifier_version=verdicts[0].verifier if verdicts else None,
                                     strategy=self.strategy, sampling=params.to_dict(), seed=seed,
                                     config=self.model_dump(mode="json"), stage=self.name, round=ctx.round)
            write_run(out_dir / f"{self.name}.{name}", manifest=manifest, problems=problems, attempts=attempts,
                      verdicts=verdicts, metrics=metrics, trees=solved.trees())
            summary[name] = round(metrics["accuracy"], 4)
        runs = [f"{self.name}.{name}" for name in self.problems]
        return StageOutput("eval", str(out_dir), item_key(summary, model.fingerprint, seed)[:32],
                           {"summary": summary, "runs": runs})
