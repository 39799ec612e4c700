"""The one interface every stage uses to get text from a model.

A backend implements `Generator`: batched `generate(prompts, params)` returning, for each
prompt, `params.n` completions. Prompts are plain strings or chat message lists
(`[{"role": "user", "content": ...}]`). Backends register themselves by name with
`register_backend`, so a new backend is one module plus one decorator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence, Union, runtime_checkable

from reasonloop.errors import ModelError  # noqa: F401 - re-exported: models raise it, the CLI catches it

ChatMessages = list[dict[str, str]]
Prompt = Union[str, ChatMessages]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy; `seed` makes sampling reproducible."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = 0
    logprobs: bool = False
    calculator: bool = False  # answer GSM8K-style `<<48/2=` calls with `24>>` (models.calculator)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    """One generated continuation. `tokens` counts generated tokens before EOS/stop."""

    text: str
    tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    logprob: float | None = None  # sum of token log-probabilities, where the backend gives them
    error: str | None = None  # set (with finish_reason="error") when this item failed
    stop_reason: str | None = None  # the stop string that ended it (None: end of text, length or error)


@runtime_checkable
class Generator(Protocol):
    """Anything that turns prompts into completions."""

    name: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        """For each prompt, `params.n` completions, in order."""
        ...

    def fingerprint(self) -> str:
        """Identifies the model for caching (weights hash, or server + model name)."""
        ...


BACKENDS: dict[str, Callable[..., Generator]] = {}


def register_backend(name: str) -> Callable[[Callable[..., Generator]], Callable[..., Generator]]:
    def decorate(factory: Callable[..., Generator]) -> Callable[..., Generator]:
        BACKENDS[name] = factory
        return factory

    return decorate


@dataclass
class ModelSpec:
    """What `load_generator` needs: a backend name and its arguments."""

    backend: str = "hf"
    model: str = ""
    options: dict[str, Any] = field(default_factory=dict)


Request = tuple[Prompt, SamplingParams]


def generate_each(generator: Generator, requests: Sequence[Request]) -> list[list[Completion]]:
    """Each prompt with its own params (say, its own seed): in one batched call where the backend
    has `generate_requests`, else one call per run of requests that share their params (greedy
    requests that differ only in their seed share one call: the seed changes nothing there)."""
    batched = getattr(generator, "generate_requests", None)
    if batched is not None:
        return batched(list(requests))
    results: list[list[Completion]] = []
    start = 0
    while start < len(requests):
        end = start
        while end < len(requests) and same_decoding(requests[end][1], requests[start][1]):
            end += 1
        results.extend(generator.generate([prompt for prompt, _ in requests[start:end]], requests[start][1]))
        start = end
    return results


def same_decoding(a: SamplingParams, b: SamplingParams) -> bool:
    return a == b or (a.temperature == 0 and replace(a, seed=b.seed) == b)


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """Cut `text` at the first stop string; return (text, the stop string that was hit, or None)."""
    found = [(i, s) for i, s in ((text.find(s), s) for s in stop if s) if i >= 0]
    if not found:
        return text, None
    cut, matched = min(found, key=lambda item: item[0])
    return text[:cut], matched


def sample_seed(seed: int, prompt_text: str, sample_index: int) -> int:
    """A 62-bit seed for one sample of one prompt: the same wherever the prompt sits in a batch."""
    import hashlib

    material = f"{seed}\0{sample_index}\0{prompt_text}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "little") >> 2
