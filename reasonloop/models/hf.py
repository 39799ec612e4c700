"""The transformers backend: local safetensors or GGUF weights, CPU or CUDA.

Sampling runs its own short decode loop over the model's KV cache (left padding, one
forward per step for the whole batch) instead of `model.generate`, so that every row has
its own seed: a completion depends only on (model, prompt, seed, sample index, params),
never on which other prompts share its batch. Each row draws its uniforms up front from a
`torch.Generator` seeded by a hash of those, and samples by inverse CDF.

    from reasonloop.models.hf import HFGenerator
    from reasonloop.models.base import SamplingParams
    gen = HFGenerator("runs/tiny")
    gen.generate(["Question: 2 + 3?\\nAnswer:"], SamplingParams(n=4, temperature=0.8, seed=1))
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reasonloop.models.calculator import CALL_CHARS, calculator_reply
from reasonloop.models.base import Completion, ModelError, Prompt, SamplingParams, apply_stop, register_backend, sample_seed

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
DEFINING_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class _Row:
    """One sequence to sample: a prompt's tokens, its seed and how many tokens it may add."""

    prompt_index: int
    sample_index: int
    ids: list[int]
    seed: int
    max_new: int


def is_gguf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"GGUF"


def resolve_weights(model: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(what to pass to `from_pretrained`, gguf file name or None); ModelError when it cannot exist."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"model {model}: a file must be a .gguf; otherwise pass the model directory")
        return str(path.parent), path.name
    if path.is_dir():
        if gguf_file or (path / "config.json").is_file():
            return str(path), gguf_file
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0]
        found = f"several .gguf files ({', '.join(ggufs)}): pass gguf_file" if ggufs else "no config.json and no .gguf file"
        raise ModelError(f"model {model}: {found}")
    if str(model).startswith(("/", ".", "~")) or str(model).count("/") > 1 or os.sep + os.sep in str(model):
        raise ModelError(f"model path {model} does not exist")
    return str(model), gguf_file  # a Hub id: transformers looks in the local cache (and the Hub when online)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def is_dequantized(model) -> bool:
    """True when transformers unpacked a GGUF model's blocks into plain float weights (the usual case)."""
    quantizer = getattr(model, "hf_quantizer", None)
    return quantizer is None or not getattr(quantizer, "packed_modules", None)


def forget_quantization(model) -> None:
    """Mark a dequantised GGUF model as the plain float model it now is: saved without a
    quantization config, and trainable (Trainer refuses a model still flagged `is_quantized`)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
        return
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_plain(tokenizer, model, target: Path) -> None:
    """Keep a dequantised GGUF model as a safetensors directory at `target`: converting takes
    tens of seconds on CPU, loading the result about one. Atomic (rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.rename(staging, target)
    except OSError:
        if not (target / "config.json").is_file():  # anything but another process winning the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def gguf_cache_root() -> Path:
    """Where converted GGUF models live: $REASONLOOP_CACHE/gguf (default ~/.cache/reasonloop/gguf)."""
    return Path(os.environ.get("REASONLOOP_CACHE", Path.home() / ".cache" / "reasonloop")).expanduser() / "gguf"


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def weight_files(source: str, gguf_file: str | None) -> list[Path]:
    """The files that determine a model's outputs, for its fingerprint."""
    root = Path(source)
    if not root.is_dir():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(source, local_files_only=True))
    if gguf_file:
        return [root / gguf_file]
    return sorted(p for p in root.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name in DEFINING_FILES)


_FINGERPRINTS: dict[tuple, str] = {}


def hash_files(files: Sequence[Path]) -> str:
    """sha256 over names and contents, cached by (path, size, mtime)."""
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + b"\0")
            with open(f, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


def decode_key(params: SamplingParams) -> tuple:
    """Rows can share a batch when these agree (seed, n and max_new_tokens are per row)."""
    return (params.temperature, params.top_p, params.stop, params.logprobs, params.calculator)


def sample_tokens(logits, temperature: float, top_p: float, uniforms):
    """Next token per row: argmax when temperature is 0, else inverse-CDF sampling with top-p."""
    import torch

    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p >= 1:
        cdf = probs.cumsum(-1)
        order = None
    else:
        probs, order = probs.sort(dim=-1, descending=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)  # keep the smallest prefix with mass >= top_p
        cdf = probs.cumsum(-1)
    picks = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(1), right=True).clamp(max=cdf.shape[1] - 1)
    return (picks if order is None else order.gather(1, picks)).squeeze(1)


def cache_argument(model) -> str:
    """The name under which `model.forward` takes and returns its KV cache: `cache` from
    transformers 5.25 on (`past_key_values` is deprecated there, removed in 5.40), before that
    `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@register_backend("hf")
class HFGenerator:
    """A transformers causal LM as a `Generator`. `model`: a directory, a `.gguf` file, or a Hub id."""

    name = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "auto",
        dtype: str | None = None,
        gguf_file: str | None = None,
        batch_size: int = 32,
        gguf_cache: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = str(model)
        self.batch_size = batch_size
        self.gguf_cache = gguf_cache
        self.source, self.gguf_file = resolve_weights(model, gguf_file)
        self.device = pick_device(device)
        self.tokenizer, self.model = self._load(dtype)
        self._attach()

    @classmethod
    def for_model(cls, model, tokenizer, *, name: str = "in-memory model", batch_size: int = 32) -> "HFGenerator":
        """Sample from a model already in memory (e.g. the one a trainer is updating), on its device."""
        generator = cls.__new__(cls)
        generator.model_name, generator.batch_size, generator.gguf_cache = name, batch_size, False
        generator.source, generator.gguf_file = name, None
        generator.device = str(next(model.parameters()).device)
        generator.tokenizer, generator.model = tokenizer, model
        generator._attach()
        return generator

    def _attach(self) -> None:
        self.context_window = context_window(self.model, self.tokenizer)
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        self.pad_id = next(i for i in (self.tokenizer.pad_token_id, *self.eos_ids, 0) if i is not None)
        self.cache_argument = cache_argument(self.model)
        self._lock = threading.Lock()  # one generate at a time: the model and its cache are not shared safely
        self.reuse_prefix = True  # one prefill per distinct prompt in a batch (False: benchmarks' baseline)

    def _load(self, dtype: str | None):
        import torch

        torch_dtype = getattr(torch, dtype) if dtype else None
        if not self.gguf_file:
            tokenizer, model = self._from_pretrained(self.source, torch_dtype)
        else:
            self._check_gguf()
            cached = gguf_cache_root() / hash_files([Path(self.source) / self.gguf_file])[:32] if self.gguf_cache else None
            if cached is not None and (cached / "config.json").is_file():
                tokenizer, model = self._from_pretrained(str(cached), torch_dtype)
            else:
                tokenizer, model = self._from_pretrained(self.source, torch_dtype, gguf_file=self.gguf_file)
                if is_dequantized(model):
                    forget_quantization(model)
                    if cached is not None:
                        save_plain(tokenizer, model, cached)
        return tokenizer, model.to(self.device).eval()

    def _from_pretrained(self, source: str, dtype, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError… all mean "cannot load"
            hint = "" if Path(source).exists() else " (not a local path, and not in the Hugging Face cache; offline?)"
            raise ModelError(f"cannot load model {self.model_name}{hint}: {_first_line(exc)}") from exc
        return tokenizer, model

    def _check_gguf(self) -> None:
        gguf_path = Path(self.source) / self.gguf_file
        if not gguf_path.is_file():
            raise ModelError(f"model {self.model_name}: GGUF file {gguf_path} does not exist")
        if not is_gguf(gguf_path):
            raise ModelError(f"model {self.model_name}: {gguf_path} is not a GGUF file (its first bytes are not b'GGUF')")

    # -- public API -----------------------------------------------------------------

    def fingerprint(self) -> str:
        """sha256 of the weight, config and tokenizer files (cached by path, size and mtime)."""
        return "sha256:" + hash_files(weight_files(self.source, self.gguf_file))[:32]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        return self.generate_requests([(prompt, params) for prompt in prompts])

    def generate_requests(self, requests: Sequence[tuple[Prompt, SamplingParams]]) -> list[list[Completion]]:
        """Each prompt with its own params (seed, n, max_new_tokens may differ), batched together
        wherever their decoding settings (temperature, top_p, stop, logprobs) agree."""
        results: list[list[Completion | None]] = [[None] * params.n for _, params in requests]
        groups: dict[tuple, list[_Row]] = {}
        for index, (prompt, params) in enumerate(requests):
            try:
                rows = self._rows_for(index, prompt, params)
            except ModelError as exc:  # this prompt fails; the others still run
                results[index] = [Completion("", 0, "error", error=str(exc)) for _ in range(params.n)]
                continue
            groups.setdefault(decode_key(params), []).extend(rows)
        with self._lock:
            for rows in groups.values():
                params = requests[rows[0].prompt_index][1]
                rows.sort(key=lambda row: len(row.ids))  # similar lengths share a batch: less padding
                for start in range(0, len(rows), self.batch_size):
                    batch = rows[start : start + self.batch_size]
                    for row, completion in zip(batch, self._run_batch_or_fail(batch, params)):
                        results[row.prompt_index][row.sample_index] = completion
        return results  # type: ignore[return-value]

    def count_tokens(self, prompt: Prompt) -> int:
        text, templated = self.render(prompt)
        return len(self.tokenizer(text, add_special_tokens=not templated)["input_ids"])

    # -- preparing rows ---------------------------------------------------------------

    def render(self, prompt: Prompt) -> tuple[str, bool]:
        """(prompt text, whether it already holds the special tokens the template adds)."""
        if isinstance(prompt, str):
            return prompt, False
        if not isinstance(prompt, list) or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in prompt):
            raise ModelError(f"a prompt must be a string or a list of {{'role', 'content'}} messages, got {str(prompt)[:80]!r}")
        if not self.tokenizer.chat_template:
            raise ModelError(f"model {self.model_name} has no chat template: pass plain-text prompts")
        return self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True), True

    def _rows_for(self, index: int, prompt: Prompt, params: SamplingParams) -> list[_Row]:
        text, templated = self.render(prompt)
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        limit = self.context_window
        if limit is not None and len(ids) >= limit:
            raise ModelError(f"prompt {index} has {len(ids)} tokens; model {self.model_name} has a context window of {limit} tokens")
        max_new = params.max_new_tokens if limit is None else min(params.max_new_tokens, limit - len(ids))
        seed = random.getrandbits(62) if params.seed is None else params.seed
        return [_Row(index, j, ids, sample_seed(seed, text, j), max_new) for j in range(params.n)]

    # -- the decode loop ----------------------------------------------------------------

    def _run_batch_or_fail(self, rows: list[_Row], params: SamplingParams) -> list[Completion]:
        import torch

        try:
            return self._run_batch(rows, params)
        except (RuntimeError, torch.OutOfMemoryError) as exc:  # the batch fails, the job goes on
            message = f"model {self.model_name}: generation failed: {_first_line(exc)}"
            return [Completion("", 0, "error", error=message) for _ in rows]

    def _forward(self, ids, mask, positions, cache):
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                         **{self.cache_argument: cache})
        return out.logits[:, -1, :].float(), out[self.cache_argument]

    def _run_batch(self, rows: list[_Row], params: SamplingParams) -> list[Completion]:
        """Decode `rows` together. `live` maps batch positions to rows; rows that finish are
        dropped from the batch (and its KV cache) once they are a quarter of it."""
        import torch

        device, size = self.device, len(rows)
        steps = max(row.max_new for row in rows)
        ids, mask = self._left_pad([row.ids for row in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        uniforms = torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(row.seed), dtype=torch.float64) for row in rows]).float().to(device)
        limits = torch.tensor([row.max_new for row in rows], device=device)
        eos = torch.tensor(sorted(self.eos_ids), device=device, dtype=torch.long)
        tokens = torch.full((size, steps), self.pad_id, dtype=torch.long, device=device)
        token_logprobs = torch.zeros((size, steps), device=device) if params.logprobs else None
        lengths = torch.zeros(size, dtype=torch.long, device=device)
        stopped = torch.zeros(size, dtype=torch.bool, device=device)
        live = torch.arange(size, device=device)
        forced: dict[int, list[int]] = {}  # batch row -> calculator reply tokens still to write
        with torch.inference_mode():
            logits, cache = self._prefill(ids, mask, positions, ids.shape[1] + steps)
            for step in range(steps):
                next_tokens = sample_tokens(logits, params.temperature, params.top_p, uniforms[live, step])
                if forced:
                    self._write_forced(next_tokens, live, forced)
                active = ~stopped[live] & (lengths[live] < limits[live])
                ended = torch.isin(next_tokens, eos) & active
                kept = active & ~ended
                tokens[live, step] = torch.where(kept, next_tokens, tokens[live, step])
                if token_logprobs is not None:
                    token_logprobs[live, step] = torch.log_softmax(logits, -1).gather(1, next_tokens[:, None]).squeeze(1)
                lengths[live] += kept
                stopped[live] |= ended
                if params.calculator:
                    forced.update(self._calculator_calls(tokens, live[kept & self._ends_with_equals(next_tokens)].tolist(), step))
                if params.stop:
                    stopped[self._stop_hits(tokens, live[kept].tolist(), step, params.stop)] = True
                finished = stopped[live] | (lengths[live] >= limits[live])
                if bool(finished.all()):
                    break
                if 4 * int(finished.sum()) >= len(live):
                    keep = (~finished).nonzero().squeeze(1)
                    cache.batch_select_indices(keep)
                    live, mask, positions, next_tokens = live[keep], mask[keep], positions[keep], next_tokens[keep]
                positions = positions[:, -1:] + 1
                mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=device)], dim=1)
                logits, cache = self._forward(next_tokens[:, None], mask, positions, cache)
        return [
            self._completion(tokens[i, : lengths[i]].tolist(), bool(stopped[i]), token_logprobs[i] if token_logprobs is not None else None, params)
            for i in range(size)
        ]

    def _prefill(self, ids, mask, positions, capacity: int):
        """The prompt's forward pass, once per distinct prompt: rows that share a prompt (n samples of
        one prompt, k continuations of one prefix) copy its KV cache instead of recomputing it."""
        import torch

        rows = torch.cat([ids, mask], dim=1)
        distinct, inverse = torch.unique(rows, dim=0, return_inverse=True)
        if not self.reuse_prefix or len(distinct) == len(rows):
            return self._forward(ids, mask, positions, preallocated_cache(self.model.config, capacity))
        first = torch.full((len(distinct),), len(rows), dtype=torch.long, device=ids.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=ids.device), reduce="amin")
        logits, cache = self._forward(ids[first], mask[first], positions[first], preallocated_cache(self.model.config, capacity))
        cache.batch_select_indices(inverse)
        return logits[inverse], cache

    def _left_pad(self, sequences: list[list[int]]):
        import torch

        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, seq in enumerate(sequences):
            ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _ends_with_equals(self, next_tokens):
        """Which sampled tokens end with `=` (a calculator call may end there)."""
        import torch

        if not hasattr(self, "_equals_ids"):
            vocab = range(len(self.tokenizer))
            ids = [i for i, text in zip(vocab, self.tokenizer.batch_decode([[i] for i in vocab])) if text.endswith("=")]
            self._equals_ids = torch.tensor(ids, dtype=torch.long, device=self.device)
        return torch.isin(next_tokens, self._equals_ids)

    def _calculator_calls(self, tokens, rows: list[int], step: int) -> dict[int, list[int]]:
        """For rows whose text now ends with `<<EXPRESSION=`: the tokens of the calculator's reply."""
        if not rows:
            return {}
        first = max(0, step + 1 - CALL_CHARS)  # a call's characters are ASCII: at least one per token
        tails = self.tokenizer.batch_decode(tokens[rows, first : step + 1].tolist(), skip_special_tokens=True)
        replies = {row: calculator_reply(text) for row, text in zip(rows, tails)}
        return {row: self.tokenizer(reply, add_special_tokens=False)["input_ids"] for row, reply in replies.items() if reply}

    @staticmethod
    def _write_forced(next_tokens, live, forced: dict[int, list[int]]) -> None:
        """Replace the sampled token of rows with a pending calculator reply by its next token."""
        for position, row in enumerate(live.tolist()):
            queue = forced.get(row)
            if queue:
                next_tokens[position] = queue.pop(0)
                if not queue:
                    del forced[row]

    def _stop_hits(self, tokens, rows: list[int], step: int, stop: Sequence[str]) -> list[int]:
        """Rows whose newest tokens contain a stop string (only the tail is decoded: cheap)."""
        window = max(len(s.encode()) for s in stop) + 2  # a token holds at least one byte
        tails = tokens[rows, max(0, step + 1 - window) : step + 1].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return [row for row, text in zip(rows, texts) if any(s in text for s in stop)]

    def _completion(self, token_ids: list[int], stopped: bool, token_logprobs, params: SamplingParams) -> Completion:
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        text, hit = apply_stop(text, params.stop)
        count = self._tokens_covering(token_ids, len(text)) if hit else len(token_ids)
        logprob = float(token_logprobs[:count].sum()) if token_logprobs is not None else None
        return Completion(text, count, "stop" if hit or stopped else "length", logprob, stop_reason=hit)

    def _tokens_covering(self, token_ids: list[int], chars: int) -> int:
        """Fewest leading tokens whose text is at least `chars` long (binary search on decode)."""
        low, high = 0, len(token_ids)
        while low < high:
            mid = (low + high) // 2
            if len(self.tokenizer.decode(token_ids[:mid], skip_special_tokens=True)) >= chars:
                high = mid
            else:
                low = mid + 1
        return low


def preallocated_cache(config, capacity: int):
    """A KV cache written in place, for models whose layers all use full attention (None: the
    model's default cache). transformers' DynamicCache concatenates every step, copying the
    whole cache each time: a third of the decode time of the tiny model."""
    from transformers.cache_utils import Cache, DynamicLayer

    text_config = config.get_text_config(decoder=True)
    layer_types = getattr(text_config, "layer_types", None) or ["full_attention"] * text_config.num_hidden_layers
    if any(kind != "full_attention" for kind in layer_types) or getattr(text_config, "sliding_window", None):
        return None

    class PreallocatedLayer(DynamicLayer):
        def lazy_initialization(self, key_states, value_states) -> None:
            super().lazy_initialization(key_states, value_states)
            batch, heads = key_states.shape[:2]
            self.key_store = key_states.new_empty((batch, heads, capacity, key_states.shape[-1]))
            self.value_store = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
            self.length = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            self.key_store[:, :, self.length : end] = key_states
            self.value_store[:, :, self.length : end] = value_states
            self.length = end
            return self._views()

        def batch_select_indices(self, indices) -> None:
            self.key_store, self.value_store = self.key_store[indices], self.value_store[indices]
            self._views()

        def _views(self):
            self.keys, self.values = self.key_store[:, :, : self.length], self.value_store[:, :, : self.length]
            return self.keys, self.values

    return Cache(layers=[PreallocatedLayer() for _ in layer_types])


def context_window(model, tokenizer) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 10**9 else None


def eos_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        ids.update(value if isinstance(value, (list, tuple)) else [value] if value is not None else [])
    return ids
