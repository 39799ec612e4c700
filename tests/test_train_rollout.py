"""GRPO rollouts for calculator models, the SFT time budget, and number tokens of the tiny tokenizer."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.train import common
from reasonloop.models.calculator import reply_spans
from reasonloop.train.rollout import calculator_rollout, model_token_mask

CALC_FORMAT = replace(PLAIN_FORMAT, calculator=True)


@pytest.fixture(scope="module")
def problems():
    from reasonloop.sources.templates.builtin import builtin_problems

    return builtin_problems(1, seed=0, max_steps=3)[:16]


@pytest.fixture(scope="module")
def calc_tiny(tmp_path_factory, problems):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = [CALC_FORMAT.render_prompt(p.question) + CALC_FORMAT.render_target(p.solution, p.answer) for p in problems]
    path = create_tiny_model(tmp_path_factory.mktemp("calc") / "model", texts,
                             TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                             vocab_size=300, number_tokens=200)
    CALC_FORMAT.save(path)
    return path


def test_reply_spans_cover_only_the_replies():
    text = "so 21 - 7 = <<21-7=14>>14 left, then <<14*2=28>>28."
    assert [text[a:b] for a, b in reply_spans(text)] == ["14>>", "28>>"]
    assert reply_spans("no calls, 3 = 3 and <<unfinished") == []


def test_model_token_mask_zeroes_tokens_inside_replies(calc_tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(calc_tiny)
    text = " so 21 - 7 = <<21-7=14>>14 stickers"
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = model_token_mask(encoded["offset_mapping"], reply_spans(text))
    masked = "".join(text[a:b] for (a, b), m in zip(encoded["offset_mapping"], mask) if m == 0)
    assert masked == "14>>"
    assert len(mask) == len(encoded["input_ids"]) and sum(mask) == len(mask) - len(tokenizer.tokenize("14>>"))


def test_rollout_gives_one_completion_per_prompt_with_distinct_samples_for_repeats(calc_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(calc_tiny), AutoModelForCausalLM.from_pretrained(calc_tiny).train()
    trainer = SimpleNamespace(processing_class=tokenizer, model=model, state=SimpleNamespace(global_step=0),
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    prompts = [CALC_FORMAT.render_prompt("How many?")] * 4 + [CALC_FORMAT.render_prompt("How much?")] * 4
    out = calculator_rollout(CALC_FORMAT, temperature=1.0, max_new_tokens=12, seed=3)(prompts, trainer)
    assert len(out["prompt_ids"]) == len(out["completion_ids"]) == len(out["env_mask"]) == 8
    assert all(len(ids) == len(mask) for ids, mask in zip(out["completion_ids"], out["env_mask"]))
    assert out["prompt_ids"][0] == tokenizer(prompts[0])["input_ids"]
    assert len({tuple(ids) for ids in out["completion_ids"][:4]}) > 1  # repeats are different samples
    assert model.training  # handed back in training mode


def test_sft_time_budget_stops_training_and_says_so(calc_tiny, problems, tmp_path):
    from reasonloop.train.sft import SFTSettings, train_sft

    out = train_sft(calc_tiny, problems, tmp_path / "sft",
                    SFTSettings(max_steps=10_000, batch_size=4, max_seconds=1.0, save_steps=10_000))
    manifest = json.loads((out / common.MANIFEST).read_text())
    assert manifest["stopped_by_time_budget"] is True and manifest["optimizer_steps"] < 10_000
    assert manifest["train_seconds"] < 30


def test_sft_keeps_calculator_calls_for_a_calculator_model(calc_tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train.sft import SFTSettings, train_sft

    seen = []
    real = common.sft_rows
    monkeypatch.setattr(common, "sft_rows", lambda *a, **kw: seen.append(real(*a, **kw)) or seen[-1])
    train_sft(calc_tiny, problems[:4], tmp_path / "sft", SFTSettings(max_steps=1, batch_size=4))  # annotations off
    assert sum("<<" in row["completion"] for row in seen[0]) == sum("<<" in (p.solution or "") for p in problems[:4]) > 0


@pytest.mark.parametrize("field, value", [("max_seconds", 0), ("adam_beta2", 1.0)])
def test_bad_settings_are_refused(field, value):
    from reasonloop.train.sft import SFTSettings

    with pytest.raises(ValueError, match=field):
        SFTSettings(**{field: value})


def test_number_tokens_make_integers_single_tokens():
    from reasonloop.models.tiny import train_tokenizer

    tokenizer = train_tokenizer(["Nadia had 21 stickers and gave 7 away."] * 4, vocab_size=300, number_tokens=1000)
    assert tokenizer.tokenize("had 21 and 999") [-1] == "999"
    assert "21" in tokenizer.tokenize("had 21")
    assert tokenizer.tokenize("1800")[:2] == ["180", "0"]
    ids = tokenizer("Nadia had 1800 and 28.5 <<3*4=12>>12", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "Nadia had 1800 and 28.5 <<3*4=12>>12"
    with pytest.raises(ValueError, match="number_tokens"):
        train_tokenizer(["x"], vocab_size=300, number_tokens=-1)
