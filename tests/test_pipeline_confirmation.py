"""A confirmation set shares no question with the training and development sets, or is refused."""

from typing import get_args

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.executors import make_executor
from reasonloop.pipeline.recipe import parse_recipe
from reasonloop.pipeline.contract import RunContext
from reasonloop.pipeline.engine import no_progress
from reasonloop.pipeline.stages.problems import ProblemsStage
from reasonloop.sources.templates.build import ANSWER_SOURCES


def run_stage(tmp_path, name, inputs=None, seed=0, **fields):
    logged = []
    ctx = RunContext(parse_recipe({"name": "t", "stages": []}), tmp_path / "run", tmp_path / "cache",
                     make_executor("inline"), no_progress, log=logged.append)
    stage = ProblemsStage(name=name, kind="problems", source="builtin", max_steps=1, **fields)
    (tmp_path / name).mkdir()
    return stage.run(ctx, inputs or {}, tmp_path / name, seed), logged


def test_an_overlapping_confirmation_set_is_refused_with_the_count_and_a_disjoint_one_passes(tmp_path):
    train, _ = run_stage(tmp_path, "train", n_per_template=30)
    with pytest.raises(ReasonloopError, match=r"confirm: (\d+) of its \d+ questions also appear in train; .*share none"):
        run_stage(tmp_path, "confirm", {"disjoint_from": [train]}, seed=5, n_per_template=30, disjoint_from=["train"])
    kept, logged = run_stage(tmp_path, "confirm2", {"disjoint_from": [train], "exclude": [train]}, seed=5, n_per_template=30,
                             disjoint_from=["train"], exclude=["train"])
    assert kept.meta["count"] > 0 and "  confirm2: 0 of" in logged[-1] and logged[-1].endswith("questions in train")


def test_a_set_smaller_than_asked_is_refused(tmp_path):
    with pytest.raises(ReasonloopError, match="fewer than min_problems = 100000"):
        run_stage(tmp_path, "small", n_per_template=1, min_problems=100000)


def test_answer_from_reads_template_folders_only_and_leaves_the_default_key_unchanged(tmp_path, shared_data):
    folder = f"templates:{shared_data / 'gsm-symbolic' / 'templates' / 'p2-sample'}"
    default = ProblemsStage(name="p", kind="problems", source=folder)
    assert "answer_from" not in default.cache_settings()  # recipes written before the option keep their keys
    assert ProblemsStage(name="p", kind="problems", source=folder, answer_from="solution").cache_settings()["answer_from"] == "solution"
    with pytest.raises(ReasonloopError, match="answer_from applies to 'templates:DIR' sources, not 'builtin'"):
        ProblemsStage(name="p", kind="problems", source="builtin", answer_from="solution").preflight()
    with pytest.raises(ReasonloopError, match=r"1 invalid template\(s\): .*never equals #answer"):
        default.load(0)
    problems = ProblemsStage(name="p", kind="problems", source=folder, n_per_template=50, answer_from="solution").load(0)
    assert len(problems) == 100 and len({p.question for p in problems}) == 100
    assert get_args(ProblemsStage.model_fields["answer_from"].annotation) == ANSWER_SOURCES
