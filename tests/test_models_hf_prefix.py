"""Prefix reuse in the hf backend: rows sharing a prompt prefill once and copy its KV cache,
with the same completions as recomputing it for every row."""

import pytest

torch = pytest.importorskip("torch")

from reasonloop.models import SamplingParams, load_generator  # noqa: E402
from reasonloop.models.tiny import TinyConfig, create_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    texts = [f"Question: Tom has {i} apples and buys {2 * i} more.\nAnswer: {i} + {2 * i} = {3 * i}\n#### {3 * i}" for i in range(80)]
    model = create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts,
                              TinyConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=96),
                              vocab_size=300, seed=3)
    return load_generator(str(model), batch_size=16)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_reusing_the_prefix_gives_the_completions_of_recomputing_it(gen, temperature):
    prompts = ["Question: Tom has 4 apples and buys 8 more.\nAnswer:", "Question: 12 + 30?\nAnswer: 12"]
    params = SamplingParams(n=5, temperature=temperature, max_new_tokens=10, seed=4, logprobs=True, stop=("\n",))
    calls = []
    forward = gen._forward
    gen._forward = lambda ids, *rest: calls.append(ids.shape) or forward(ids, *rest)
    try:
        gen.reuse_prefix = True
        reused = gen.generate(prompts, params)
        prefill_rows = calls[0][0]
        gen.reuse_prefix = False
        recomputed = gen.generate(prompts, params)
    finally:
        gen.reuse_prefix = True
        del gen._forward
    assert prefill_rows == 2  # two distinct prompts, ten rows
    assert [[c.text for c in row] for row in reused] == [[c.text for c in row] for row in recomputed]
    for a, b in zip(sum(reused, []), sum(recomputed, [])):
        assert a.tokens == b.tokens and a.logprob == pytest.approx(b.logprob, abs=1e-4)
