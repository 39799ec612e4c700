"""`reasonloop eval` with the real tiny model (transformers backend), sampling on."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonloop.evaluate import read_run
from reasonloop.prompts import PLAIN_FORMAT

BATCH = 32


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, shared_data):
    from reasonloop.models.tiny import create_tiny_model

    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:150]]
    model_dir = create_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                                  [r["question"] + "\n" + r["answer"] for r in rows], seed=0)
    PLAIN_FORMAT.save(model_dir)  # an untrained model: ask it the way training would
    return model_dir


def write_suite(path: Path, data: Path, max_new_tokens: int) -> Path:
    path.write_text(
        "description: GSM8K test, sampled, short completions for an untrained tiny model\n"
        f"source: {{kind: dataset, path: {data}, preset: gsm8k}}\n"
        "strategy: sample\nn: 1\n"
        f"sampling: {{temperature: 0.8, max_new_tokens: {max_new_tokens}, seed: 7}}\n"
    )
    return path


def eval_command(model, suite, out, *extra):
    return [sys.executable, "-m", "reasonloop.cli", "eval", "--model", str(model), "--suite", str(suite),
            "-o", str(out), "--batch-size", str(BATCH), *extra]


def test_eval_with_the_tiny_model_writes_a_complete_run(tiny_model, tmp_path, shared_data):
    from reasonloop.evaluate import evaluate_suite
    from reasonloop.models import load_generator

    suite = write_suite(tmp_path / "suite.yaml", shared_data / "gsm8k" / "test.jsonl", 16)
    metrics = evaluate_suite(load_generator(str(tiny_model)), str(suite), tmp_path / "run", model_dir=tiny_model,
                             limit=12, n=3, batch_size=8, progress=False)
    run = read_run(tmp_path / "run", strict=True)
    assert metrics["n_problems"] == 12 and metrics["n_samples"] == 3 and len(run.verdicts) == 36
    assert run.attempts[0].prompt.startswith("Question: ") and run.attempts[0].prompt.endswith("\nAnswer:")
    assert all(0 <= a.tokens <= 16 for a in run.attempts)  # an untrained model may end at once (EOS: 0 tokens)
    assert all(a.tokens > 0 or (a.completion == "" and a.finish_reason == "stop") for a in run.attempts)
    assert sum(a.tokens > 0 for a in run.attempts) > 30
    assert run.manifest["model_fingerprint"].startswith("sha256:")
    assert run.manifest["config"]["prompt_format"]["name"] == "plain"
    texts = {a.completion for a in run.attempts}
    assert len(texts) > 12  # sampling on: the 3 samples of a problem differ


def cache_shards(run_dir: Path, namespace: str = "solve") -> dict[str, list]:
    """Generation shards of a run's cache (one per finished batch; one entry per problem)."""
    shards = {}
    for shard in sorted((run_dir / "cache" / namespace).glob("shard-*.jsonl")):
        lines = shard.read_text().splitlines()[1:]
        shards[shard.name] = [json.loads(line)["value"] for line in lines]
    return shards


@pytest.mark.slow
def test_full_gsm8k_eval_resumes_after_kill_with_identical_bytes(tiny_model, tmp_path, shared_data):
    """1,319 problems, sampling on: kill -9 mid-generation, resume, compare with an uninterrupted run."""
    suite = write_suite(tmp_path / "suite.yaml", shared_data / "gsm8k" / "test.jsonl", 64)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    whole = subprocess.run(eval_command(tiny_model, suite, tmp_path / "whole"), env=env, capture_output=True,
                           text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert "generating" in whole.stderr and "1319/1319" in whole.stderr  # the progress bar

    out = tmp_path / "resumed"
    process = subprocess.Popen(eval_command(tiny_model, suite, out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(cache_shards(out)) < 15 and time.monotonic() < deadline:
        assert process.poll() is None, "run finished before it could be interrupted"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = cache_shards(out)
    generated_before = sum(len(v) for v in before.values())  # problems
    n_batches = -(-1319 // BATCH)
    assert 15 * BATCH <= generated_before < 1319 and len(before) < n_batches
    assert json.loads((out / "manifest.json").read_text())["complete"] is False

    resumed = subprocess.run(eval_command(tiny_model, suite, out), env=env, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = cache_shards(out)
    assert all(after[name] == values for name, values in before.items())  # finished shards untouched
    generation_entries = [v for values in after.values() for v in values if isinstance(v, list)]
    assert len(generation_entries) == 1319 and len(after) == n_batches  # each problem generated once in all
    for name in ("problems.jsonl", "attempts.jsonl", "verdicts.jsonl", "metrics.json"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"tiny model, 1319 GSM8K problems, sampled: accuracy {metrics['accuracy']:.4f}, "
          f"resumed after kill at {len(before)}/{n_batches} batches, identical bytes")
