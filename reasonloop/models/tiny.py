"""A tiny Llama-architecture model and tokenizer built from scratch, for CPU runs.

The tokenizer is byte-level BPE (any text round-trips) trained with the `tokenizers`
library on the corpus the model will learn from; every digit is its own token, so
numbers are spelled digit by digit and arithmetic does not depend on how BPE happened
to merge them. With `number_tokens=N` the integers 0..N-1 are single tokens instead
(longer numbers are split leftmost-longest: 1800 -> 180, 0): a model that leaves the
arithmetic to the calculator (`models.calculator`) then copies a quantity from the
question with one attention lookup instead of an induction over its digits, which a tiny
model learns far sooner. The model is a standard `LlamaForCausalLM`, saved as a plain Hugging Face
directory that `AutoModelForCausalLM` / `AutoTokenizer` load back unchanged.

    from reasonloop.models.tiny import create_tiny_model
    path = create_tiny_model("runs/tiny", ["Question: 2 + 3?\\nAnswer: 5"] * 100)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, BOS, EOS]  # ids 0, 1, 2


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, number_tokens: int = 0) -> "PreTrainedTokenizerFast":
    """Byte-level BPE trained on `texts` (`vocab_size` tokens), plus one token for each integer
    below `number_tokens`; other digits are single tokens; BOS prepended when encoding."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if vocab_size < len(byte_level.alphabet()) + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be >= {len(byte_level.alphabet()) + len(SPECIAL_TOKENS)} (256 bytes + special tokens), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    if number_tokens < 0:
        raise ValueError(f"number_tokens must be >= 0, got {number_tokens}")
    tokenizer.add_tokens([AddedToken(str(n), normalized=False, special=False) for n in range(number_tokens)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the tiny Llama. The defaults give about 0.9M parameters with a 512 vocab."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 512
    tie_embeddings: bool = True  # shares input/output embeddings: fewer parameters at this size

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        for name, value in asdict(self).items():
            if not isinstance(value, bool) and value < 1:
                raise ValueError(f"TinyConfig.{name} must be >= 1, got {value}")


def build_tiny_model(tokenizer: "PreTrainedTokenizerFast", config: TinyConfig = TinyConfig(), seed: int = 0) -> "LlamaForCausalLM":
    """A freshly initialised `LlamaForCausalLM` sized by `config`, deterministic in `seed`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama_config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def create_tiny_model(
    out_dir: str | Path,
    corpus_texts: Iterable[str],
    config: TinyConfig = TinyConfig(),
    vocab_size: int = 512,
    seed: int = 0,
    number_tokens: int = 0,
) -> Path:
    """Train a tokenizer on `corpus_texts`, build the model, save both to `out_dir`."""
    out = Path(out_dir)
    tokenizer = train_tokenizer(corpus_texts, vocab_size=vocab_size, number_tokens=number_tokens)
    tokenizer.model_max_length = config.max_positions  # so truncation/trainers respect the context window
    model = build_tiny_model(tokenizer, config, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for item in Path(staging).iterdir():  # each rename is atomic: no half-written file in out_dir
            os.replace(item, out / item.name)
    return out


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
