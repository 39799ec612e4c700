"""The training stages: a model in, a trained checkpoint out (SFT, self-training, DPO, GRPO, PRM).

A training stage's kind is the name of its trainer in `reasonloop.train.registry`, which gives its
settings dataclass (the stage's `settings:`) and its train function."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.contract import (RecipeError, RunContext, StageConfig, StageOutput, register_stage,
                                          settings_object)
from reasonloop.pipeline.stages.models import model_output
from reasonloop.records import Attempt, Problem, Verdict, load
from reasonloop.train.registry import Trainer, get_trainer


class TrainStage(StageConfig):
    """Shared by the training stages: a model and problems in, a trained checkpoint out, through the
    trainer registered under the stage's kind (`reasonloop.train.registry`)."""

    produces: ClassVar = "model"
    refs: ClassVar = {"model": ("model",), "problems": ("problems",)}

    model: str = Field(description="The model to start from: a model stage or 'base'.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Fields of the trainer's settings dataclass.")

    def preflight(self) -> None:
        self.trainer_settings()

    def trainer(self) -> Trainer:
        return get_trainer(self.kind)

    def trainer_settings(self) -> Any:
        return settings_object(self.trainer().settings, self.settings, f"{self.name}.settings")

    def training_problems(self, ctx: RunContext, inputs: dict[str, Any]) -> list[Problem]:
        return load(inputs["problems"].path, Problem)

    def run(self, ctx, inputs, out_dir, seed):
        trainer = self.trainer()
        further = {name: load(inputs[name].path, Problem) for name in trainer.inputs if name in inputs}
        result = trainer.run(inputs["model"].path, self.training_problems(ctx, inputs), out_dir / "model",
                             self.trainer_settings(), **further)
        output = model_output(result.model_dir, **result.meta())
        output.kind = self.produces
        return output


@register_stage("sft")
class SFTStage(TrainStage):
    """Supervised fine-tuning on worked solutions: gold ones (`problems`) or verified samples (`verified`)."""

    refs: ClassVar = {"model": ("model",), "problems": ("problems",), "verified": ("verdicts",)}

    problems: str | None = Field(None, description="Problems stage with gold solutions.")
    verified: str | None = Field(None, description="Verify stage: train on its correct samples (STaR / ReST-EM).")
    max_per_problem: int = Field(4, ge=1, description="Distinct correct samples kept per problem (with `verified`).")
    check_steps: bool = Field(False, description="With `verified`: keep a correct sample only if its calculator "
                                                 "steps are grounded too (`reasonloop.verify.steps`).")

    def training_problems(self, ctx: RunContext, inputs: dict[str, Any]) -> list[Problem]:
        if "problems" in inputs:
            return load(inputs["problems"].path, Problem)
        if "verified" not in inputs:
            raise RecipeError(f"stage {self.name}: set problems (gold solutions) or verified (a verify stage)")
        problems = verified_solutions(inputs["verified"], self.max_per_problem, self.check_steps)
        ctx.log(f"  {len(problems)} verified solutions to train on")
        if not problems:
            raise ReasonloopError(f"stage {self.name}: nothing to train on (no correct samples)")
        return problems


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

    problems: str = Field(description="Problems stage to sample and verify on.")
    heldout: str | None = Field(None, description="Problems stage for the per-round held-out accuracy.")
    replay: str | None = Field(None, description="Problems stage with worked solutions (e.g. the SFT data) "
                                                 "added to every round's fine-tuning set.")


@register_stage("grpo")
class GRPOStage(TrainStage):
    """GRPO with the verifier as reward through `reasonloop.train.grpo`."""

    problems: str = Field(description="Problems stage to train on.")


@register_stage("dpo")
class DPOStage(TrainStage):
    """DPO on pairs of a verified-correct and an incorrect sample of the same problem, sampled from the
    starting model (`reasonloop.train.dpo`)."""

    problems: str = Field(description="Problems stage to sample preference pairs on.")


@register_stage("prm")
class PRMStage(TrainStage):
    """A process (or, with settings.kind: orm, outcome) reward model trained on Math-Shepherd labels of the
    model's own samples (`reasonloop.train.prm`). It scores steps; it does not generate, so no stage that
    samples from a model can read it."""

    produces: ClassVar = "reward_model"

    problems: str = Field(description="Problems stage whose sampled solutions are labelled.")
