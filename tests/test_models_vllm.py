"""The optional vllm backend: request mapping without a GPU; the engine itself only where vllm is installed."""

import importlib.util
from types import SimpleNamespace

import pytest

from reasonloop.models import ModelError, SamplingParams, load_generator
from reasonloop.models.vllm import VLLMGenerator, to_completion, vllm_sampling_kwargs

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_sampling_params_map_to_vllm_kwargs():
    params = SamplingParams(n=4, temperature=0.7, top_p=0.95, max_new_tokens=64, stop=("\n\n", "Question:"), logprobs=True)
    assert vllm_sampling_kwargs(params, seed=42) == {
        "n": 4, "temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "seed": 42, "stop": ["\n\n", "Question:"], "logprobs": 0,
    }
    plain = vllm_sampling_kwargs(SamplingParams(), seed=1)
    assert "stop" not in plain and "logprobs" not in plain and plain["temperature"] == 0.0


def test_outputs_map_to_completions():
    params = SamplingParams(stop=("####",), logprobs=True)
    out = SimpleNamespace(text="2 + 3 = 5", token_ids=[5, 6, 7, 8], finish_reason="stop", cumulative_logprob=-1.5)
    assert to_completion(out, params).__dict__ == {"text": "2 + 3 = 5", "tokens": 4, "finish_reason": "stop", "logprob": -1.5, "error": None,
                                                 "stop_reason": None}
    long = SimpleNamespace(text="abc #### 5", token_ids=[1] * 9, finish_reason="length", cumulative_logprob=None)
    cut = to_completion(long, params)
    assert cut.text == "abc " and cut.finish_reason == "stop" and cut.stop_reason == "####"
    assert to_completion(long, SamplingParams()).finish_reason == "length"


def test_calculator_is_refused_with_the_backends_that_have_it():
    gen = object.__new__(VLLMGenerator)  # no engine needed: refused before anything is generated
    gen.model_name = "Qwen/Qwen2.5-0.5B"
    with pytest.raises(ModelError, match="Qwen/Qwen2.5-0.5B: calculator decoding .* hf backend and by the openai backend"):
        gen.generate(["Q: 2*3?\nA:"], SamplingParams(calculator=True))


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: the missing-package message does not apply")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(ModelError, match=r"pip install reasonloop\[vllm\]"):
        load_generator("vllm:Qwen/Qwen2.5-0.5B")


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (optional extra reasonloop[vllm], needs CUDA)")
def test_kwargs_are_accepted_by_vllm():
    import vllm

    vllm.SamplingParams(**vllm_sampling_kwargs(SamplingParams(n=2, temperature=0.5, stop=("x",), logprobs=True), seed=3))
