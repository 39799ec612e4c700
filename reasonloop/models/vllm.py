"""vLLM in this process (GPU): the optional `reasonloop[vllm]` extra, imported only when used.

For a vLLM *server*, use the `openai` backend with its URL instead. Each prompt is one
vLLM request with `n` samples and a seed derived from (seed, prompt), so results do not
depend on batch composition; chat prompts go through the model's chat template.

    gen = load_generator("vllm:Qwen/Qwen2.5-0.5B-Instruct", gpu_memory_utilization=0.5)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from reasonloop.models.base import Completion, ModelError, Prompt, SamplingParams, apply_stop, register_backend, sample_seed

SEED_LIMIT = 2**31


def vllm_sampling_kwargs(params: SamplingParams, seed: int) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams` for one prompt's `params.n` samples."""
    kwargs: dict[str, Any] = {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": seed,
    }
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if params.logprobs:
        kwargs["logprobs"] = 0  # 0: only the sampled token's log-probability
    return kwargs


def to_completion(output: Any, params: SamplingParams) -> Completion:
    """A Completion from a vLLM `CompletionOutput`."""
    text, hit = apply_stop(output.text, params.stop)
    finish = "length" if output.finish_reason == "length" and not hit else "stop"
    logprob = output.cumulative_logprob if params.logprobs else None
    return Completion(text, len(output.token_ids), finish, None if logprob is None else float(logprob), stop_reason=hit)


@register_backend("vllm")
class VLLMGenerator:
    """A model loaded by vLLM; `engine_options` go to `vllm.LLM` (e.g. `gpu_memory_utilization`)."""

    name = "vllm"

    def __init__(self, model: str, **engine_options: Any) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ModelError(f"model {model}: the vllm backend needs `pip install reasonloop[vllm]` (and a GPU)") from exc
        self.model_name = model
        try:
            self.llm = vllm.LLM(model=model, **engine_options)
        except Exception as exc:  # vLLM raises many kinds: all mean "cannot load"
            raise ModelError(f"cannot load model {model} with vLLM: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.context_window = self.llm.llm_engine.model_config.max_model_len

    def fingerprint(self) -> str:
        from reasonloop.models.hf import hash_files, weight_files

        if Path(self.model_name).is_dir():
            return "sha256:" + hash_files(weight_files(self.model_name, None))[:32]
        return f"vllm:{self.model_name}"

    def render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        return self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        return self.generate_requests([(prompt, params) for prompt in prompts])

    def generate_requests(self, requests: Sequence[tuple[Prompt, SamplingParams]]) -> list[list[Completion]]:
        """Each prompt with its own params, all in one `LLM.generate` call."""
        if any(params.calculator for _, params in requests):
            raise ModelError(f"model {self.model_name}: calculator decoding (`<<EXPR=` calls) is supported by the hf "
                             "backend and by the openai backend with a vLLM server, not by in-process vllm")
        import vllm

        results: list[list[Completion]] = [[] for _ in requests]
        texts, sampling, where = [], [], []
        for index, (prompt, params) in enumerate(requests):
            text = self.render(prompt)
            length = len(self.tokenizer(text)["input_ids"])
            if length >= self.context_window:
                message = f"prompt {index} has {length} tokens; model {self.model_name} has a context window of {self.context_window} tokens"
                results[index] = [Completion("", 0, "error", error=message) for _ in range(params.n)]
                continue
            seed = random.getrandbits(62) if params.seed is None else params.seed
            kwargs = vllm_sampling_kwargs(params, sample_seed(seed, text, 0) % SEED_LIMIT)
            kwargs["max_tokens"] = min(kwargs["max_tokens"], self.context_window - length)
            texts.append(text)
            sampling.append(vllm.SamplingParams(**kwargs))
            where.append(index)
        if texts:
            for index, output in zip(where, self.llm.generate(texts, sampling, use_tqdm=False)):
                results[index] = [to_completion(o, requests[index][1]) for o in output.outputs]
        return results
