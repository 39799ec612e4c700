"""Kill -9 at random moments during a generate+verify run of 2,000 problems; each resumed
run must produce the same bytes as an uninterrupted one, and store no item twice.

The moment: a random number of finished items (0 to 4,000, generated + verified), then a
random 0-0.3 s more, so kills land inside batches, between them, during shard writes and
while the outputs are written.

Real pieces throughout: GSM8K problems, the tiny Llama (untrained, and smaller than its
default so 21 runs fit in a few minutes: hidden 32, one layer) sampling at temperature 0.8,
the shared verifier in the default process-pool executor, the CLI in a subprocess.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonloop.cache import read_shard

N_PROBLEMS = 2000
TRIALS = 20
OUTPUTS = ("solve/attempts.jsonl", "verify/verdicts.jsonl")
BATCH = {"solve": 100, "verify": 200}  # items per shard in each cache namespace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, shared_data):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model
    from reasonloop.prompts import PLAIN_FORMAT

    root = tmp_path_factory.mktemp("resume")
    train = shared_data / "gsm8k" / "train.jsonl"
    texts = [json.loads(line)["question"] for line in train.read_text().splitlines()[:500]]
    config = TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    model = create_tiny_model(root / "tiny", texts, config, seed=0)
    PLAIN_FORMAT.save(model)
    recipe = {
        "name": "resume",
        "model": str(model),
        "seed": 11,
        "executor": {"kind": "local", "workers": 2},
        "stages": [
            {"name": "problems", "kind": "problems", "source": str(train), "preset": "gsm8k", "limit": N_PROBLEMS},
            {"name": "solve", "kind": "solve", "model": "base", "problems": "problems", "temperature": 0.8,
             "max_new_tokens": 8, "batch_size": BATCH["solve"]},
            {"name": "verify", "kind": "verify", "attempts": "solve", "batch_size": BATCH["verify"]},
        ],
    }
    path = root / "recipe.json"  # JSON is YAML
    path.write_text(json.dumps(recipe))
    return path


def start(recipe: Path, work: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "reasonloop.cli", "run", str(recipe), "--run-dir", str(work / "run"),
               "--cache-dir", str(work / "cache"), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-2000:]


def stored_items(cache: Path) -> tuple[int, int]:
    """(entries over all shards, distinct keys): equal when no item was stored twice."""
    entries = [key for shard in sorted(cache.glob("shard-*.jsonl")) for key in read_shard(shard)]
    return len(entries), len(set(entries))


def progress(work: Path) -> int:
    """Items finished so far (generated + verified), counted from the shard files' names."""
    return sum(BATCH[ns] * len(list((work / "cache" / ns).glob("shard-*.jsonl"))) for ns in BATCH)


def kill_at(process: subprocess.Popen, work: Path, target: int, extra: float) -> int | None:
    """Wait until `target` items are done, then `extra` seconds more (into the next batch), then kill -9."""
    while process.poll() is None and progress(work) < target:
        time.sleep(0.02)
    time.sleep(extra)
    if process.poll() is not None:
        return None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return progress(work)


def test_kill_9_at_random_moments_then_resume_gives_identical_output(recipe_file, tmp_path):
    reference = tmp_path / "reference"
    finish(start(recipe_file, reference))
    expected = {name: (reference / "run" / name).read_bytes() for name in OUTPUTS}
    assert expected["solve/attempts.jsonl"].count(b"\n") == N_PROBLEMS
    expected_items = {ns: stored_items(reference / "cache" / ns)[1] for ns in BATCH}
    rng, killed_at = random.Random(2026), []
    for trial in range(TRIALS):
        work = tmp_path / f"trial-{trial}"
        process = start(recipe_file, work)
        done = kill_at(process, work, rng.randrange(0, 2 * N_PROBLEMS), rng.uniform(0, 0.3))
        if done is None:
            finish(process)
        killed_at.append(done)
        finish(start(recipe_file, work))
        for name in OUTPUTS:
            assert (work / "run" / name).read_bytes() == expected[name], f"trial {trial}: {name} differs"
        for namespace in BATCH:
            entries, distinct = stored_items(work / "cache" / namespace)
            assert entries == distinct == expected_items[namespace], f"trial {trial}: {namespace}: {entries} entries"
    print(f"killed after (generated + verified items): {killed_at}")
    killed = [done for done in killed_at if done is not None]  # None: it finished before the kill
    generating = [done for done in killed if done < N_PROBLEMS]  # the others: verifying or writing the outputs
    # a target near the end can fall after the outputs are written (the run then finishes first): the kills
    # that land must still cover both phases
    assert len(killed) >= TRIALS // 2 and len(generating) >= 5 and len(killed) - len(generating) >= 5
