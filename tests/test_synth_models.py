"""Synthesis on a very small model: QFT trains a question writer (questions only) with the SFT
trainer and samples with provenance; solvability runs through the one solve path; QPO trains
with TRL's DPOTrainer; one back-translation round reports its counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonloop.prompts import PLAIN_FORMAT, load_prompt_format
from reasonloop.records import Problem
from reasonloop.sources.synth import backtranslate as bt
from reasonloop.sources.synth.agreement import AgreementSettings, solvability_filter
from reasonloop.sources.synth.qft import QFT_PROMPT, generate_questions, train_qft
from reasonloop.sources.synth.qpo import train_qpo
from reasonloop.train.sft import SFTSettings


def quick_sft() -> SFTSettings:
    return SFTSettings(max_steps=2, batch_size=8, save_steps=1, logging_steps=1)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    from reasonloop.sources.templates.builtin import builtin_problems

    return builtin_problems(1, seed=0, max_steps=2)[:12]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, problems):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = [PLAIN_FORMAT.render_prompt(p.question) + PLAIN_FORMAT.render_target(p.solution, p.answer) for p in problems]
    path = create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts + [QFT_PROMPT],
                             TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                        max_positions=256), vocab_size=300)
    PLAIN_FORMAT.save(path)
    return path


@pytest.fixture(scope="module")
def writer(tiny, problems, tmp_path_factory):
    return train_qft(tiny, problems, tmp_path_factory.mktemp("qft") / "writer", quick_sft())


def test_qft_trains_on_questions_only_and_saves_the_writer_format(writer, tiny):
    fmt = load_prompt_format(writer)
    assert fmt.name == "qft" and fmt.render_prompt(QFT_PROMPT) == QFT_PROMPT + "\nQuestion:" and fmt.stop == ("\n",)
    manifest = json.loads((writer / "manifest.json").read_text())
    assert manifest["optimizer_steps"] == 2 and manifest["n_problems"] == 12
    assert load_prompt_format(tiny).name == "plain"  # the starting model is untouched (its files were linked)


def test_generated_questions_carry_provenance_and_counts(writer):
    drawn = generate_questions(writer, 6, temperature=1.0, seed=3, max_new_tokens=12)
    assert drawn.counts["sampled"] == 6
    assert drawn.counts["returned"] + drawn.counts["blank"] + drawn.counts["generation_failed"] == 6
    meta = drawn.problems[0].meta["synth"]
    assert meta["method"] == "qft" and meta["generator"].startswith("sha256:") and meta["filters"] == {}
    again = generate_questions(writer, 6, temperature=1.0, seed=3, max_new_tokens=12)
    assert [p.question for p in again.problems] == [p.question for p in drawn.problems]  # seeded


def test_solvability_samples_through_the_solve_path(tiny, problems):
    settings = AgreementSettings(k=2, max_new_tokens=6)
    result = solvability_filter(problems[:3], tiny, settings)
    assert result.counts["in"] == 3
    assert result.counts["kept"] + result.counts.get("no_answers", 0) + result.counts.get("no_agreement", 0) == 3


def test_qpo_trains_the_writer_with_dpo(writer, problems, tmp_path):
    from reasonloop.train.dpo import DPOSettings

    pairs = [(problems[0].question, "bad"), (problems[1].question, problems[2].question)]
    out = train_qpo(writer, pairs, tmp_path / "qpo", DPOSettings(max_steps=1, batch_size=2, save_steps=1, logging_steps=1))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == 2 and manifest["optimizer_steps"] == 1 and manifest["kind"] == "synth-qpo"
    assert load_prompt_format(out).name == "qft"


def test_backtranslation_round_counts_and_keeps_closing_pairs(tiny, problems, tmp_path, monkeypatch):
    # The writer is real (one SFT round); the questions are scripted so the rules and the cycle are pinned.
    held = problems[9:12]
    scripted = [[held[0].question, "nothing here?"], [""], [held[2].question.replace("Sunday", "Monday")]]
    monkeypatch.setattr(bt, "write_questions", lambda writer, pending, settings, r: (scripted[: len(pending)], "sha256:w"))
    monkeypatch.setattr(bt, "closes", lambda candidates, solver, settings: [True] * len(candidates))
    result = bt.backtranslate(tiny, tiny, problems[:9], held, tmp_path / "bt",
                              bt.BTSettings(rounds=1, samples=2, sft=quick_sft()))
    (report,) = result.rounds
    assert report.examples[0]["outcome"] == "missing_number" and report.examples[0]["question"] == "nothing here?"
    assert report.to_dict() | {} == {**report.to_dict(), "solutions": 3, "questions": 4, "blank": 1, "rule_failed": 1,
                                     "kept": 2, "total_kept": 2, "oracle_right": 2}
    assert [p.meta["synth"]["from_solution"] for p in result.kept] == [held[0].id, held[2].id]
    assert result.kept[0].meta["synth"]["filters"] == {"cycle": "closed", "rules": "pass"}
    assert (tmp_path / "bt" / "round-1" / "writer" / "model.safetensors").is_file()


def synth_recipe(n_questions: int) -> dict:
    tiny_config = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "max_positions": 256}
    quick = {"max_steps": 2, "batch_size": 8, "save_steps": 1, "logging_steps": 1}
    return {"name": "synth", "seed": 0, "executor": {"kind": "inline"}, "stages": [
        {"name": "train", "kind": "problems", "source": "builtin", "max_steps": 2, "n_per_template": 1, "limit": 12},
        {"name": "tiny", "kind": "tiny_model", "corpus": ["train"], "config": tiny_config, "vocab_size": 300},
        {"name": "qft", "kind": "qft", "model": "tiny", "problems": "train", "settings": quick},
        {"name": "synthesize", "kind": "synthesize", "writer": "qft", "solver": "tiny", "n": n_questions, "k": 2,
         "eval_sets": ["train"]},
        {"name": "report", "kind": "report", "runs": ["synthesize"]},
    ]}


def test_synthesize_stage_writes_kept_problems_with_provenance_and_counts(problems, tmp_path, monkeypatch):
    from reasonloop.pipeline.engine import run_recipe
    from reasonloop.pipeline.recipe import parse_recipe
    from reasonloop.records import load
    from reasonloop.sources.synth import agreement, qft

    fresh = "A farmer plants 4 rows of 12 trees each and later sells 9 of the trees at the market. How many remain?"
    scripted = [fresh, fresh.replace("4 rows", "6 rows"), "A question with no numbers at all, how many?", problems[0].question]
    monkeypatch.setattr(qft, "generate_questions", lambda writer, n, **kw: qft.Drawn(
        [Problem(question=text, answer="", meta=qft.provenance("qft", "sha256:w")) for text in scripted], {"sampled": 4}))
    monkeypatch.setattr(agreement, "sample_answers", lambda items, solver, settings: [["39", "39"] for _ in items])
    result = run_recipe(parse_recipe(synth_recipe(4)), tmp_path / "run", cache_dir=tmp_path / "cache", log=lambda _: None)
    output = result.outputs["synthesize"]
    assert output.meta["filters"]["format"] == {"in": 4, "kept": 3, "few_numbers": 1}
    assert output.meta["filters"]["dedup"] == {"in": 3, "kept": 2, "near_duplicate": 1}
    assert output.meta["filters"]["decontaminate"] == {"in": 2, "kept": 1, "contaminated:train": 1}
    (kept,) = load(output.path, Problem)
    assert kept.question == fresh and kept.answer == "39" and kept.meta["synth"]["method"] == "qft"
    assert set(kept.meta["synth"]["filters"]) == {"format", "dedup", "solvability", "difficulty", "decontaminate"}
    assert_report_shows_provenance(result, kept)


def assert_report_shows_provenance(result, kept):
    """The report stage shows the synthesize stage's directory as a run: one row per kept problem
    (no samples) whose detail carries the provenance, and no notice about missing metrics."""
    from reasonloop.report.build import build_report, trace_payload

    assert (Path(result.outputs["report"].path)).is_file()
    report = build_report([Path(result.outputs["synthesize"].path).parent])
    (run,) = report.runs
    assert run.manifest["kind"] == "synthesize" and run.manifest["filters"]["format"]["kept"] == 3
    assert report.notices == []
    payload = trace_payload(0, run)
    (problem,) = payload["problems"]
    assert problem[0] == kept.id
    assert problem[5].startswith("method qft · generator sha256:w · ")
    assert "filters: format pass, dedup " in problem[5] and "decontaminate " in problem[5]
    (row,) = payload["rows"]
    assert row[4] == "unverified" and row[7] == "no samples"
    assert "method qft" in report.html


def test_synthesize_stage_stops_with_counts_when_nothing_is_usable(tmp_path):
    from reasonloop.pipeline.engine import run_recipe
    from reasonloop.pipeline.recipe import parse_recipe
    from reasonloop.sources.synth.filters import NothingUsable

    with pytest.raises(NothingUsable, match=r"format: kept 0 of 5 .*train the question writer longer"):
        run_recipe(parse_recipe(synth_recipe(5)), tmp_path / "run", cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "run" / "synthesize" / "problems.jsonl").exists()
