"""Full-size learning checks (slow, on demand: REASONLOOP_LEARNING_TARGETS=1; CI runs the small ones
of tests/test_learning_ci.py): the tiny model from scratch on the built-in library's 1–3-step templates.

Train and held-out problems come from different seeds; held-out questions are deduplicated
against every training question by normalised text. Each number is greedy accuracy on the
same 500 held-out problems, printed with its per-step breakdown (run with `-s` to see them;
docs/results.md records the runs). A fixed number of optimizer steps everywhere, no time cap. Fixtures chain: base → SFT → RFT → (control, GRPO, DPO).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from dataclasses import replace

from learning_checks import heldout_pairs, preference_margin
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.text import normalize_question
from reasonloop.train import common, evaluate_accuracy, mcnemar

pytestmark = pytest.mark.slow

SFT_SEED, HELDOUT_SEED, RFT_SEED, GRPO_SEED = 1, 2, 3, 4
N_SFT, N_HELDOUT, N_RFT, N_GRPO, N_DPO = 1000, 500, 3000, 1920, 1000
N_HELDOUT_EXCLUDED = 1000  # the held-out set leaves out these first RFT-seed draws too, as in every recorded run
MAX_STEPS = 3
# REASONLOOP_LEARNING_DIR keeps the runs there: a rerun (e.g. after a timeout) reuses finished ones.
# REASONLOOP_LEARNING_DRY_RUN=1 checks the wiring in a minute (few problems and steps; numbers meaningless).
KEEP_DIR = os.environ.get("REASONLOOP_LEARNING_DIR")
DRY_RUN = os.environ.get("REASONLOOP_LEARNING_DRY_RUN") == "1"
if DRY_RUN:
    N_SFT, N_HELDOUT, N_RFT, N_GRPO, N_DPO = 48, 24, 32, 16, 32

from reasonloop.models.tiny import TinyConfig  # noqa: E402
from reasonloop.train.dpo import DPOSettings  # noqa: E402
from reasonloop.train.grpo import GRPOSettings  # noqa: E402
from reasonloop.train.rft import RFTSettings  # noqa: E402
from reasonloop.train.sft import SFTSettings  # noqa: E402

# Solutions keep GSM8K's <<48/2=24>> calls, answered by the calculator when decoding (models.calculator);
# integers below 1000 are single tokens, so copying a quantity from the question is one attention lookup.
FORMAT = replace(PLAIN_FORMAT, calculator=True)
NUMBER_TOKENS = 1000
MODEL = TinyConfig(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=384)
SFT = SFTSettings(learning_rate=5e-3, batch_size=24, max_steps=900, adam_beta2=0.95,
                  save_steps=100, logging_steps=10)
ROUND_SFT = SFTSettings(learning_rate=1e-3, batch_size=32, epochs=2, warmup_ratio=0.0, adam_beta2=0.95, save_steps=10_000)
RFT = RFTSettings(rounds=2, k=4, temperature=0.8, max_per_problem=2, restart_from_base=False, sft=ROUND_SFT, seed=0,
                  max_new_tokens=160, check_steps=True)
# GRPO: small steps over many samples (240 steps x 64 completions, one pass over 1,920 problems RFT never saw);
# larger learning rates over fewer steps lost accuracy (docs/results.md).
GRPO = GRPOSettings(learning_rate=1e-4, batch_size=64, num_generations=8, beta=0.04, temperature=1.0,
                    max_completion_length=160, epochs=1, save_steps=60)
DPO = DPOSettings(learning_rate=3e-5, batch_size=16, beta=0.1, k=4, epochs=1, save_steps=10_000)
if DRY_RUN:
    MODEL = TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    # enough SFT steps that the model answers a few of the problems it trained on, which RFT samples
    SFT, ROUND_SFT = SFTSettings(max_steps=300, batch_size=8, learning_rate=5e-3), SFTSettings(max_steps=1, batch_size=8)
    RFT = RFTSettings(rounds=2, k=8, sft=ROUND_SFT, max_new_tokens=64)
    GRPO = GRPOSettings(max_steps=1, batch_size=8, num_generations=4, max_completion_length=16)
    DPO = DPOSettings(max_steps=1, batch_size=4, k=4, max_new_tokens=32)


def draw(n: int, seed: int, exclude: set[str] = frozenset()):
    from reasonloop.sources.templates.builtin import builtin_problems, builtin_templates

    per_template = n // len(builtin_templates(max_steps=MAX_STEPS)) + 2
    pool = [p for p in builtin_problems(per_template * 2, seed=seed, max_steps=MAX_STEPS)
            if normalize_question(p.question) not in exclude]
    random.Random(seed).shuffle(pool)
    return pool[:n]


@pytest.fixture(scope="module")
def data():
    def questions(problems):
        return {normalize_question(p.question) for p in problems}

    sft = draw(N_SFT, SFT_SEED)
    heldout = draw(N_HELDOUT, HELDOUT_SEED, exclude=questions(sft + draw(N_HELDOUT_EXCLUDED, RFT_SEED)))
    rft = sft[:N_RFT] if DRY_RUN else draw(N_RFT, RFT_SEED, exclude=questions(heldout))
    grpo = draw(N_GRPO, GRPO_SEED, exclude=questions(heldout + sft + rft))
    overlap = len(questions(heldout) & questions(sft + rft + grpo))
    print(f"\nproblems: {len(sft)} SFT (seed {SFT_SEED}), {len(rft)} RFT (seed {RFT_SEED}; DPO uses its first {N_DPO}), "
          f"{len(grpo)} GRPO (seed {GRPO_SEED}, none of them SFT or RFT problems), {len(heldout)} held-out "
          f"(seed {HELDOUT_SEED}); held-out overlap with training questions: {overlap}")
    assert overlap == 0 and len(heldout) == N_HELDOUT
    return {"sft": sft, "rft": rft, "grpo": grpo, "heldout": heldout}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return Path(KEEP_DIR) if KEEP_DIR else tmp_path_factory.mktemp("learning")


def once(train, out: Path, *args):
    """Reuse a finished run kept in REASONLOOP_LEARNING_DIR; otherwise train (resuming a killed one)."""
    return out if common.is_complete(out) else train(*args, out)


def measured(name, model_dir, data, start=None):
    report = evaluate_accuracy(model_dir, data["heldout"], max_new_tokens=32 if DRY_RUN else 200)
    delta = f" ({(report.accuracy - start.accuracy) * 100:+.1f} points)" if start else ""
    print(f"{name}: {report.summary()}{delta}")
    return report


@pytest.fixture(scope="module")
def sft(data, run_dir):
    from reasonloop.models.tiny import create_tiny_model
    from reasonloop.train.sft import train_sft

    texts = [FORMAT.render_prompt(p.question) + common.target_text(p, FORMAT, annotations=True) for p in data["sft"]]
    base = create_tiny_model(run_dir / "base", texts, MODEL, vocab_size=512, seed=0, number_tokens=NUMBER_TOKENS)
    FORMAT.save(base)
    out = once(lambda *a: train_sft(*a, SFT), run_dir / "sft", base, data["sft"])
    manifest = json.loads((out / common.MANIFEST).read_text())
    print(f"SFT: {manifest['optimizer_steps']} steps in {manifest['train_seconds']} s of training")
    return out, manifest, measured("SFT", out, data)


@pytest.fixture(scope="module")
def rft(data, run_dir, sft):
    from reasonloop.train.rft import train_rft

    result = train_rft(sft[0], data["rft"], run_dir / "rft", RFT, replay=data["sft"])
    print("RFT rounds:\n" + result.table())
    return result, measured("RFT", result.model_dir, data, start=sft[2])


# The RFT and GRPO targets are not met yet on the 2-core CPU (docs/results.md records the
# measured numbers). They are real assertions, run on demand with REASONLOOP_LEARNING_TARGETS=1, rather
# than non-strict xfails that could never fail: CI does not claim what has not been reached.
def on_demand(reason: str):
    return pytest.mark.skipif(os.environ.get("REASONLOOP_LEARNING_TARGETS") != "1",
                              reason=f"{reason}; REASONLOOP_LEARNING_TARGETS=1 runs it")


SHORTFALL = on_demand("learning target not met yet on CPU (docs/results.md)")
# Met (41.0%, docs/results.md), but too long for CI at one thread; CI's small checks are tests/test_learning_ci.py.
FULL_SIZE = on_demand("full size, too long for CI (tests/test_learning_ci.py runs the small checks)")


@FULL_SIZE
def test_sft_on_1000_gold_solutions_reaches_40_percent_in_900_steps(sft):
    _, manifest, report = sft
    assert manifest["optimizer_steps"] == 900
    assert report.accuracy >= 0.40


@SHORTFALL
def test_rft_gains_8_points_on_its_sft_start(sft, rft):
    assert rft[1].accuracy >= sft[2].accuracy + 0.08


# The control trains on the gold solutions of every problem RFT samples; RFT keeps only the problems
# the model already solves, and 3 in 4 of its kept samples are word for word the gold solution (the
# rest are gold solutions with a wrong word or number in the text). On template data the control's
# data is a superset of RFT's, and it wins by 8.6 points (p = 4e-7; docs/results.md).
@on_demand("not reachable on template data: the gold control's training set contains RFT's (docs/results.md)")
def test_rft_beats_a_gold_control_with_the_same_steps(data, run_dir, sft, rft):
    from reasonloop.train.sft import train_sft

    result, report = rft
    steps = sum(r.optimizer_steps for r in result.rounds)
    control_settings = SFTSettings(**{**ROUND_SFT.__dict__, "max_steps": steps})
    gold = data["rft"] + data["sft"]  # the problems RFT fine-tunes on (its samples plus the replayed SFT data)
    control_dir = once(lambda *a: train_sft(*a, control_settings), run_dir / "control", sft[0], gold)
    control = measured(f"gold control ({steps} steps)", control_dir, data, start=sft[2])
    test = mcnemar(control.correct, report.correct)
    print(f"RFT vs control: {(report.accuracy - control.accuracy) * 100:+.1f} points; {test}")
    assert report.accuracy >= control.accuracy + 0.05 and test.p_value < 0.01


@SHORTFALL
def test_grpo_improves_on_its_rft_start(data, run_dir, rft):
    from reasonloop.train.grpo import train_grpo

    out = once(lambda *a: train_grpo(*a, GRPO), run_dir / "grpo-new-problems", rft[0].model_dir, data["grpo"])
    report = measured("GRPO", out, data, start=rft[1])
    assert report.accuracy >= rft[1].accuracy + 0.03


# DPO's check is its preference margin on held-out pairs (sampled from its start on the held-out problems):
# 0 exactly when DPO changes nothing, which an accuracy bound (">= start - 2 points") let pass.
@FULL_SIZE
def test_dpo_moves_its_preference_margin_on_heldout_pairs(data, run_dir, rft):
    from reasonloop.train.dpo import train_dpo

    start = rft[0].model_dir
    out = once(lambda *a: train_dpo(*a, DPO), run_dir / "dpo", start, data["rft"][:N_DPO])
    trained_pairs = json.loads((out / common.MANIFEST).read_text())["pairs"]
    pairs = heldout_pairs(start, data["heldout"], k=DPO.k, temperature=DPO.temperature, seed=1000,
                          max_new_tokens=DPO.max_new_tokens, out=run_dir / "dpo-heldout-pairs.json")
    margin = preference_margin(out, start, pairs)
    measured(f"DPO ({trained_pairs} pairs)", out, data, start=rft[1])
    print(f"DPO preference margin on {len(pairs)} held-out pairs: {margin:+.3f} nats")
    assert margin > 0


def test_smollm2_lora_sft_and_grpo_steps_run_on_cpu_and_the_adapter_reloads(data, tmp_path, monkeypatch):
    from peft import PeftModel

    from reasonloop.models import smollm2_gguf_path
    from reasonloop.models.hf import HFGenerator
    from reasonloop.train.grpo import train_grpo
    from reasonloop.train.sft import train_sft

    monkeypatch.setenv("REASONLOOP_CACHE", str(tmp_path / "cache"))  # the first load converts the GGUF, as on a fresh machine
    gguf = smollm2_gguf_path()
    problems = data["sft"][:4]
    lora = {"lora": True, "merge_lora": False, "max_steps": 1, "batch_size": 2, "logging_steps": 1}
    sft_dir = train_sft(gguf, problems, tmp_path / "sft", SFTSettings(**lora))
    grpo_dir = train_grpo(gguf, problems, tmp_path / "grpo",
                          GRPOSettings(**lora, num_generations=2, max_completion_length=16))
    for out in (sft_dir, grpo_dir):
        assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
        base = HFGenerator(gguf, device="cpu").model
        reloaded = PeftModel.from_pretrained(base, out)
        assert any("lora_" in name for name, _ in reloaded.named_parameters())
        assert [json.loads(line)["step"] for line in (out / common.TRAIN_LOG).read_text().splitlines()][0] == 1
