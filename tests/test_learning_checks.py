"""The learning checks' measures (tests/learning_checks.py) on hand-made inputs: fast."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from learning_checks import preference_margin, recording_reward, revisit_rise


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_revisit_rise_compares_each_problem_at_its_first_and_last_visit(tmp_path):
    log = tmp_path / "rewards.jsonl"
    rows = [{"step": 0, "question": "q1", "reward": r} for r in (0, 0, 1, 1)]
    rows += [{"step": 1, "question": "q2", "reward": r} for r in (0, None, 0, 0)]  # None (verifier gave up) counts 0
    rows += [{"step": 2, "question": "q3", "reward": 1}]  # visited once: left out
    rows += [{"step": 3, "question": "q1", "reward": 0}]  # a middle visit: neither end
    rows += [{"step": 5, "question": "q1", "reward": r} for r in (1, 1, 1, 1)]
    rows += [{"step": 6, "question": "q2", "reward": r} for r in (0, 1, 0, 0)]
    write_rows(log, rows)
    assert revisit_rise(log) == (0.25, 0.625, 2)


def test_revisit_rise_refuses_a_log_without_revisits(tmp_path):
    log = tmp_path / "rewards.jsonl"
    write_rows(log, [{"step": 0, "question": "q1", "reward": 1}, {"step": 1, "question": "q2", "reward": 0}])
    with pytest.raises(ValueError, match="no training problem was visited twice"):
        revisit_rise(log)


def test_recording_reward_records_training_calls_only(tmp_path):
    log = tmp_path / "run" / "rewards.jsonl"
    reward = recording_reward(log)
    columns = {"answer": ["4", "4"], "question": ["2+2?", "2+2?"]}
    assert reward(prompts=["p", "p"], completions=[" 2+2=4\n#### 4", " 5\n#### 5"], **columns) == [1.0, 0.0]
    assert not log.exists()  # GRPO's preflight check passes no trainer state
    reward(prompts=["p", "p"], completions=[" #### 4", " 4"], trainer_state=SimpleNamespace(global_step=7), **columns)
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"step": 7, "question": "2+2?", "reward": 1.0}, {"step": 7, "question": "2+2?", "reward": 0.0}]


def test_preference_margin_is_zero_for_the_reference_and_antisymmetric(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = ["Question: 2 + 3?\nAnswer: 5\n#### 5", "Question: 4 + 4?\nAnswer: 8\n#### 8"] * 4
    config = TinyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    reference = create_tiny_model(tmp_path / "reference", texts, config, vocab_size=300, seed=0)
    model = AutoModelForCausalLM.from_pretrained(reference)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter, generator=torch.Generator().manual_seed(1)))
    policy = tmp_path / "policy"
    model.save_pretrained(policy)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (policy / name).write_bytes((reference / name).read_bytes())
    pairs = [{"prompt": "Question: 2 + 3?\nAnswer:", "chosen": " 5\n#### 5", "rejected": " 6\n#### 6"},
             {"prompt": "Question: 4 + 4?\nAnswer:", "chosen": " 8\n#### 8", "rejected": " 9\n#### 9"}]
    assert preference_margin(reference, reference, pairs) == 0.0
    margin = preference_margin(policy, reference, pairs)
    assert margin != 0.0
    assert preference_margin(reference, policy, pairs) == pytest.approx(-margin, abs=1e-9)
