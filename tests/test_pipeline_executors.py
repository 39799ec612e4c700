"""Executors: the process pool and Ray give exactly what the inline executor gives.

Verification runs on real GPT-3 GSM8K solutions (identical verdicts); generation through
Ray goes to a real OpenAI-compatible server this project did not write (llama.cpp serving
SmolLM2): the same requests, each with its seed.
"""

import json
import math
import sys
from functools import partial

import pytest

from reasonloop.cache import ItemCache, item_key, map_cached
from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.executors import make_executor
from reasonloop.solve import grade_chunk


@pytest.fixture(scope="module")
def pairs(shared_data):
    rows = [json.loads(line) for line in (shared_data / "model-outputs" / "gsm8k_gpt3_solutions.jsonl").open()]
    return [(row[name]["solution"], row["ground_truth"].rsplit("A:", 1)[1].strip())
            for row in rows[:150] for name in ("6b_finetuning", "175b_verification")]


def verify_all(pairs, cache_dir, executor, batch_size=50):
    keys = [item_key("test", p) for p in pairs]
    compute = partial(grade_chunk, options={"kind": "auto", "timeout": 5.0}, workers=1)
    return map_cached(pairs, keys, compute, ItemCache(cache_dir), batch_size=batch_size, runner=executor)


def test_process_pool_gives_what_inline_gives(pairs, tmp_path):
    inline = verify_all(pairs, tmp_path / "inline", make_executor("inline"))
    with make_executor("local", workers=2) as pool:
        pooled = verify_all(pairs, tmp_path / "pool", pool)
    assert pooled == inline and {v["status"] for v in inline} >= {"correct", "incorrect"}
    distinct = len(set(pairs))
    assert len(ItemCache(tmp_path / "pool").shards()) == math.ceil(distinct / 50)


def test_unknown_executor_and_missing_ray_are_clear(monkeypatch):
    with pytest.raises(ReasonloopError, match="unknown executor 'slurm'; allowed: inline, local, ray"):
        make_executor("slurm")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ReasonloopError, match=r"the ray executor needs Ray: pip install 'reasonloop\[ray\]'"):
        make_executor("ray")


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'reasonloop[ray]')")
    executor = make_executor("ray", workers=2)  # ray.init() on this machine
    yield executor
    executor.ray.shutdown()


@pytest.mark.slow
def test_ray_verification_gives_what_inline_gives(pairs, tmp_path, ray_executor):
    inline = verify_all(pairs, tmp_path / "inline", make_executor("inline"))
    assert verify_all(pairs, tmp_path / "ray", ray_executor, batch_size=64) == inline


@pytest.mark.slow
def test_ray_generation_through_the_openai_backend_matches_inline(tmp_path, shared_data, ray_executor):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from model_servers import llama_cpp_server

    from reasonloop.models import smollm2_gguf_path
    from reasonloop.pipeline.recipe import parse_recipe
    from reasonloop.pipeline.engine import run_recipe
    from reasonloop.records import Attempt, load

    with llama_cpp_server(smollm2_gguf_path(), tmp_path / "server.log") as url:
        recipe = {
            "name": "remote", "model": url, "seed": 5,
            "stages": [
                {"name": "problems", "kind": "problems", "source": str(shared_data / "gsm8k" / "test.jsonl"),
                 "preset": "gsm8k", "limit": 12},
                {"name": "solve", "kind": "solve", "model": "base", "problems": "problems", "samples": 2,
                 "temperature": 0.7, "max_new_tokens": 24, "batch_size": 3},
                {"name": "verify", "kind": "verify", "attempts": "solve"},
            ],
        }
        for kind, executor in (("inline", make_executor("inline")), ("ray", ray_executor)):
            run_recipe(parse_recipe(recipe), tmp_path / kind, cache_dir=tmp_path / f"cache-{kind}",
                       executor=executor, log=lambda line: None)
    # The server batches whatever requests arrive together, and two Ray workers send them in
    # another grouping than one process does, so sampled text may differ by a token; the
    # requests themselves (problems, sample indices, seeds, settings) must be the same.
    inline, ray = (load(tmp_path / kind / "solve" / "attempts.jsonl", Attempt) for kind in ("inline", "ray"))
    request = lambda a: (a.problem_id, a.sample_index, a.prompt, a.sampling, a.model)  # noqa: E731
    assert [request(a) for a in ray] == [request(a) for a in inline]
    assert len(ray) == 24 and all(a.completion.strip() and a.error is None for a in ray)
