"""The `report` stage: the offline HTML report over evaluation runs and training logs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.contract import StageConfig, StageOutput, fingerprint_path, register_stage


@register_stage("report")
class ReportStage(StageConfig):
    """The offline HTML report over evaluation runs (and training logs)."""

    refs: ClassVar = {"runs": ("eval", "model", "problems")}
    produces: ClassVar = "report"

    runs: list[str] = Field(description="Evaluate stages (and training stages, for their curves; synthesize "
                                        "stages, for their kept problems' provenance).")
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
        if root.is_file():  # a problems stage writes a file; a synthesize stage's directory is a run
            root = root.parent
        if output.kind == "eval":
            found += [root / name for name in output.meta.get("runs", [])]
        elif (root / "manifest.json").is_file():
            found.append(root)
    return found
