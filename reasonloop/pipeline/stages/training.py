"""The training stages: a model in, a trained checkpoint out (SFT, self-training, GRPO)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.contract import RecipeError, StageConfig, StageOutput, register_stage, settings_object
from reasonloop.pipeline.stages.models import model_output
from reasonloop.records import Attempt, Problem, Verdict, load


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
