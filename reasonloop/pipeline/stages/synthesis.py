"""The question-synthesis stages (ScaleQuest, docs/synthesis.md): `qft` trains a question writer,
`qpo` improves it with preference pairs, `synthesize` samples questions and keeps those that pass
the filters (format, near-duplicates, solvability by agreement, difficulty, decontamination)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from reasonloop.pipeline.contract import RunContext, StageConfig, StageOutput, register_stage, settings_object
from reasonloop.pipeline.stages.models import model_output
from reasonloop.pipeline.stages.problems import write_problems
from reasonloop.records import Problem, load

QFT_DEFAULTS = {"learning_rate": 3e-3, "batch_size": 24, "max_steps": 600, "adam_beta2": 0.95}
QPO_DEFAULTS = {"learning_rate": 5e-5, "batch_size": 16, "max_steps": 60}


class AgreementFields(StageConfig):
    k: int = Field(8, ge=1, description="Solutions sampled per question for the agreement rule.")
    temperature: float = Field(0.8, gt=0, description="Their sampling temperature.")
    threshold: float = Field(0.6, gt=0, le=1, description="Majority share of the k samples needed (solvable).")
    batch_size: int = Field(256, ge=1, description="Generation batch size.")

    def agreement(self, seed: int):
        from reasonloop.sources.synth.agreement import AgreementSettings

        return AgreementSettings(k=self.k, temperature=self.temperature, threshold=self.threshold,
                                 batch_size=self.batch_size, seed=seed)


@register_stage("qft")
class QFTStage(StageConfig):
    """Question Fine-Tuning: the model learns to write questions like the problems' (questions only)."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}
    produces: ClassVar = "model"

    model: str = Field(description="The model to start from (a solver).")
    problems: str = Field(description="Problems stage whose questions are learned.")
    settings: dict[str, Any] = Field(default_factory=dict, description=f"SFT settings (defaults {QFT_DEFAULTS}).")

    def sft_settings(self):
        from reasonloop.train.sft import SFTSettings

        return settings_object(SFTSettings, {**QFT_DEFAULTS, **self.settings}, f"{self.name}.settings")

    def preflight(self) -> None:
        self.sft_settings()

    def run(self, ctx: RunContext, inputs: dict[str, Any], out_dir: Path, seed: int) -> StageOutput:
        from reasonloop.sources.synth.qft import train_qft

        problems = load(inputs["problems"].path, Problem)
        return model_output(train_qft(inputs["model"].path, problems, out_dir / "model", self.sft_settings()),
                            questions=len(problems))


@register_stage("qpo")
class QPOStage(AgreementFields):
    """Question Preference Optimization: DPO towards solvable, then harder, questions."""

    refs: ClassVar = {"writer": ("model",), "solver": ("model",)}
    produces: ClassVar = "model"

    writer: str = Field(description="The question writer (a qft stage).")
    solver: str = Field(description="The model whose samples judge solvability.")
    n: int = Field(600, ge=2, description="Questions sampled to build pairs.")
    pairs: int = Field(512, ge=1, description="At most this many preference pairs.")
    settings: dict[str, Any] = Field(default_factory=dict, description=f"DPO settings (defaults {QPO_DEFAULTS}).")

    def dpo_settings(self):
        from reasonloop.train.dpo import DPOSettings

        return settings_object(DPOSettings, {**QPO_DEFAULTS, **self.settings}, f"{self.name}.settings")

    def preflight(self) -> None:
        self.dpo_settings()

    def run(self, ctx: RunContext, inputs: dict[str, Any], out_dir: Path, seed: int) -> StageOutput:
        from reasonloop.sources.synth.qft import generate_questions
        from reasonloop.sources.synth.qpo import distinct, preference_pairs, score_questions, train_qpo

        drawn = distinct(generate_questions(inputs["writer"].path, self.n, seed=seed, batch_size=self.batch_size).problems)
        scored = score_questions(drawn, inputs["solver"].path, self.agreement(seed))
        pairs = preference_pairs(scored, max_pairs=self.pairs, seed=seed)
        solvable = sum(s.solvable for s in scored)
        ctx.log(f"  {solvable} of {len(scored)} distinct questions solvable; {len(pairs)} preference pairs")
        path = train_qpo(inputs["writer"].path, pairs, out_dir / "model", self.dpo_settings())
        return model_output(path, distinct_questions=len(scored), solvable=solvable, pairs=len(pairs))


@register_stage("synthesize")
class SynthesizeStage(AgreementFields):
    """Sample questions from a writer and keep those that pass every filter; the agreed answer is each
    kept problem's reference and `meta.synth` its provenance (method, generator, filter verdicts)."""

    refs: ClassVar = {"writer": ("model",), "solver": ("model",), "known": ("problems",), "eval_sets": ("problems",)}
    produces: ClassVar = "problems"

    writer: str = Field(description="The question writer (a qft or qpo stage).")
    solver: str = Field(description="The model whose samples judge solvability.")
    n: int = Field(1000, ge=1, description="Questions sampled.")
    writer_temperature: float = Field(1.0, gt=0, description="The writer's sampling temperature (diversity).")
    min_pass: float = Field(0.0, ge=0, le=1, description="Difficulty band: lowest pass rate kept.")
    max_pass: float = Field(1.0, ge=0, le=1, description="Difficulty band: highest pass rate kept.")
    dedup_threshold: float = Field(0.7, gt=0, le=1, description="Skeleton Jaccard counted as a near-duplicate.")
    known: list[str] = Field(default_factory=list, description="Problems stages whose skeletons are not new.")
    eval_sets: list[str] = Field(default_factory=list, description="Evaluation sets to decontaminate against.")

    def run(self, ctx: RunContext, inputs: dict[str, Any], out_dir: Path, seed: int) -> StageOutput:
        from reasonloop.sources.synth.chain import ChainSettings, filter_questions
        from reasonloop.sources.synth.qft import generate_questions

        drawn = generate_questions(inputs["writer"].path, self.n, temperature=self.writer_temperature, seed=seed,
                                   batch_size=self.batch_size)
        known = [p for output in inputs.get("known", []) for p in load(output.path, Problem)]
        suites = {name: load(o.path, Problem) for name, o in zip(self.eval_sets, inputs.get("eval_sets", []))}
        settings = ChainSettings(agreement=self.agreement(seed), min_pass=self.min_pass, max_pass=self.max_pass,
                                 dedup_threshold=self.dedup_threshold)
        kept, results = filter_questions(drawn.problems, inputs["solver"].path, settings, known=known, suites=suites)
        for result in results:
            ctx.log(f"  {result.summary()}")
        output = write_problems(out_dir / "problems.jsonl", kept)
        output.meta.update({"sampled": drawn.counts, "filters": {r.name: r.counts for r in results}})
        write_report_manifest(out_dir, self, inputs, seed, output.meta)
        return output


def write_report_manifest(out_dir: Path, stage: SynthesizeStage, inputs: dict[str, Any], seed: int,
                          counts: dict[str, Any]) -> None:
    """Make the stage's directory a run directory, so `reasonloop report` (and the report stage) shows
    the kept problems with their provenance and the filter counts."""
    from reasonloop.rundir import SYNTHESIZE_KIND, make_manifest, write_manifest

    write_manifest(out_dir, make_manifest(kind=SYNTHESIZE_KIND, model=str(inputs["writer"].path), seed=seed,
                                          config=stage.model_dump(mode="json"), solver=str(inputs["solver"].path),
                                          **counts))
