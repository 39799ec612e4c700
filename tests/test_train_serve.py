"""Self-training that samples through `reasonloop serve` on loopback: the round driver has the
server load each round's checkpoint, so round 2 samples round 1's weights."""

import json

import pytest

from model_servers import reasonloop_server
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.records import Attempt, load


@pytest.fixture(scope="module")
def memorizing_model(tmp_path_factory):
    """A tiny model fine-tuned until it reproduces most of 12 worked solutions (so rounds keep some)."""
    from reasonloop.models.tiny import TinyConfig, create_tiny_model
    from reasonloop.sources.templates.builtin import builtin_problems
    from reasonloop.train.sft import SFTSettings, train_sft

    problems = builtin_problems(1, seed=0, max_steps=1)[:12]
    texts = [PLAIN_FORMAT.render_prompt(p.question) + PLAIN_FORMAT.render_target(p.solution, p.answer) for p in problems]
    root = tmp_path_factory.mktemp("serve-rft")
    base = create_tiny_model(root / "base", texts, TinyConfig(num_layers=2), seed=0)
    PLAIN_FORMAT.save(base)
    settings = SFTSettings(learning_rate=5e-3, batch_size=12, max_steps=120, warmup_ratio=0.0, save_steps=1000,
                           logging_steps=50)
    return train_sft(base, problems, root / "sft", settings), problems


@pytest.mark.slow
def test_two_self_training_rounds_sample_through_reasonloop_serve(memorizing_model, tmp_path):
    from reasonloop.train.rft import RFTSettings, train_rft
    from reasonloop.train.sft import SFTSettings

    model, problems = memorizing_model
    log = tmp_path / "server.log"
    with reasonloop_server(model, log) as url:
        settings = RFTSettings(rounds=2, k=2, temperature=0.7, max_new_tokens=96, batch_size=12, server=url,
                               sft=SFTSettings(max_steps=2, batch_size=8, save_steps=1000))
        result = train_rft(model, problems, tmp_path / "rft", settings, heldout=problems[:4])
    round_1, round_2 = (load(tmp_path / "rft" / f"round-{r}" / "attempts.jsonl", Attempt) for r in (1, 2))
    assert {a.model for a in round_1} == {f"openai:{url}#{model.name}"}  # the starting checkpoint
    assert {a.model for a in round_2} == {f"openai:{url}#round-1"}  # round 1's weights, loaded by the driver
    assert len(round_1) == len(round_2) == 2 * len(problems)
    assert all(r.solved > 0 for r in result.rounds) and all(r.heldout_accuracy is not None for r in result.rounds)
    manifest = json.loads((tmp_path / "rft" / "manifest.json").read_text())
    assert manifest["config"]["server"] == url
