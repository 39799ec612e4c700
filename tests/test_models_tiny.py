"""The tiny built-in model: tokenizer properties, model size, deterministic init, HF round trip."""

import pytest

torch = pytest.importorskip("torch")

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM  # noqa: E402

from reasonloop.models.tiny import (  # noqa: E402
    BOS,
    EOS,
    TinyConfig,
    build_tiny_model,
    count_parameters,
    create_tiny_model,
    train_tokenizer,
)

NAMES = ["Tom", "Ana", "Lee", "Mia", "Raj", "Zoe"]
ITEMS = ["apples", "marbles", "books", "pencils", "cookies"]


def word_problems(count: int) -> list[str]:
    texts = []
    for i in range(count):
        name, item = NAMES[i % len(NAMES)], ITEMS[i % len(ITEMS)]
        a, b = 3 + 7 * i, 11 + 5 * i
        texts.append(
            f"Question: {name} has {a} {item} and buys {b} more. How many {item} does {name} have now?\n"
            f"Answer: {name} has {a} + {b} = {a + b} {item}.\n#### {a + b}"
        )
    return texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return word_problems(400)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(corpus, vocab_size=512)


def test_every_digit_is_its_own_token(tokenizer):
    ids = tokenizer("Tom has 1234567890 apples and 42 pears", add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
    assert "".join(digits).replace(" ", "") == "123456789042"
    assert all(len(p.strip()) == 1 for p in digits), pieces


@pytest.mark.parametrize("text", ["Tom has 12 apples.\n#### 12", "naïve café → 3½ 😀", "  spaces\tand\ttabs  ", ""])
def test_any_text_round_trips(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_special_tokens_bos_prepended_and_eos_set(tokenizer):
    ids = tokenizer("Question: 1 + 1?")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.bos_token == BOS
    assert tokenizer.eos_token == EOS and tokenizer.eos_token_id is not None
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    assert tokenizer.padding_side == "left"


def test_vocab_size_is_reached_on_a_rich_corpus(shared_data):
    import json

    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:300]
    texts = [json.loads(line)["question"] for line in lines]
    assert len(train_tokenizer(texts, vocab_size=512)) == 512
    assert len(train_tokenizer(texts, vocab_size=300)) == 300


def test_merges_are_learned_from_the_corpus(tokenizer):
    # "Question" occurs in every text: BPE must have merged it into few tokens.
    assert len(tokenizer("Question", add_special_tokens=False)["input_ids"]) <= 2


def test_vocab_too_small_is_refused(corpus):
    with pytest.raises(ValueError, match="vocab_size must be >= 259"):
        train_tokenizer(corpus, vocab_size=100)


def test_default_model_is_about_one_million_parameters(tokenizer):
    model = build_tiny_model(tokenizer)
    assert isinstance(model, LlamaForCausalLM)
    assert 0.7e6 <= count_parameters(model) <= 1.3e6
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_config_shapes_the_model(tokenizer):
    model = build_tiny_model(tokenizer, TinyConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=96, max_positions=128))
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (64, 2, 2)
    assert model.config.max_position_embeddings == 128
    assert count_parameters(model) < count_parameters(build_tiny_model(tokenizer))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        TinyConfig(hidden_size=100, num_heads=3)
    with pytest.raises(ValueError, match="num_layers"):
        TinyConfig(num_layers=0)


def test_init_is_deterministic_in_seed_and_leaves_global_rng_alone(tokenizer):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = build_tiny_model(tokenizer, seed=7)
    assert torch.equal(torch.rand(1), expected_next)  # building did not consume the caller's RNG
    again = build_tiny_model(tokenizer, seed=7)
    other = build_tiny_model(tokenizer, seed=8)
    weights = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(weights(first), weights(again))
    assert not torch.equal(weights(first), weights(other))


def test_saved_directory_loads_back_unchanged_with_auto_classes(tmp_path, corpus):
    out = create_tiny_model(tmp_path / "tiny", corpus, seed=3)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging dir cleaned up

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tokenizer.model_max_length == model.config.max_position_embeddings == 512
    assert isinstance(model, LlamaForCausalLM)
    rebuilt = build_tiny_model(train_tokenizer(corpus), seed=3)
    text = corpus[5]
    assert tokenizer(text)["input_ids"] == train_tokenizer(corpus)(text)["input_ids"]
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, rebuilt(ids).logits, atol=1e-6)
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
