"""The stage kinds a recipe can use, one module per family. Each maps records to records (or to a model).

A stage kind is a pydantic config class (its fields are the recipe keys, documented)
registered with `@register_stage` (`reasonloop.pipeline.contract`), with `refs` naming the
fields that point at other stages and a `run(ctx, inputs, out_dir, seed) -> StageOutput`
method. Heavy libraries are imported inside `run`. Importing this package registers them all.
"""

from reasonloop.pipeline.stages import models, problems, report, solving, synthesis, training  # noqa: F401 - registration
from reasonloop.pipeline.stages.models import TinyModelStage
from reasonloop.pipeline.stages.problems import ProblemsStage
from reasonloop.pipeline.stages.report import ReportStage
from reasonloop.pipeline.stages.solving import EvaluateStage, SolveStage, VerifyStage
from reasonloop.pipeline.stages.synthesis import QFTStage, QPOStage, SynthesizeStage
from reasonloop.pipeline.stages.training import DPOStage, GRPOStage, PRMStage, RFTStage, SFTStage

__all__ = ["DPOStage", "EvaluateStage", "GRPOStage", "PRMStage", "ProblemsStage", "QFTStage", "QPOStage", "RFTStage",
           "ReportStage", "SFTStage", "SolveStage", "SynthesizeStage", "TinyModelStage", "VerifyStage"]
