"""Any OpenAI-compatible server (vLLM, llama.cpp server, SGLang, `reasonloop serve`, hosted APIs).

Built on the official `openai` client, which already does what a robust caller needs:
exponential backoff with jitter on 408/409/429/5xx, connection errors and timeouts (honouring
`Retry-After`), and per-request timeouts. This module adds bounded concurrency, one request
per sample (llama.cpp ignores `n`; one seeded request per sample is reproducible on every
server), and failures recorded per item, so a batch job loses nothing it could finish.

With `params.calculator`, a server cannot let us write mid-generation, so each sample is
asked in rounds: generation stops at every `=`; where the text then ends a `<<EXPR=` call,
the calculator's `RESULT>>` is appended, and the server continues from the text so far.
This needs plain-text prompts and a server that says which stop string it hit (vLLM's
`stop_reason`, SGLang's `matched_stop`): an `=` cannot otherwise be told from the end of text.

    from reasonloop.models import load_generator, SamplingParams
    gen = load_generator("http://127.0.0.1:8080/v1", concurrency=8)   # model: the one it serves
    gen.generate([[{"role": "user", "content": "2 + 3?"}]], SamplingParams(n=4, temperature=0.7))
"""

from __future__ import annotations

import json
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Sequence
from urllib.parse import urlsplit

from reasonloop.models.base import Completion, ModelError, Prompt, SamplingParams, apply_stop, register_backend, sample_seed
from reasonloop.models.calculator import calculator_reply

SEED_LIMIT = 2**31  # llama.cpp and others take a 32-bit signed seed
CALL_END = "="  # the stop string that ends a calculator call (and every other `=`)
MAX_ROUNDS = 64  # requests per calculator sample; each `=` the model writes takes one
STOP_FIELDS = ("stop_reason", "matched_stop")  # where vLLM / SGLang say which stop string was hit


def normalize_base_url(url: str) -> str:
    """`http://host:port` and `http://host:port/` mean `http://host:port/v1`."""
    url = url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def build_request(model: str, prompt: Prompt, params: SamplingParams, seed: int) -> dict[str, Any]:
    """The JSON body for one sample: /v1/completions for text, /v1/chat/completions for messages."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": seed,
        "n": 1,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if isinstance(prompt, str):
        body["prompt"] = prompt
        if params.logprobs:
            body["logprobs"] = 1
    else:
        body["messages"] = [dict(message) for message in prompt]
        if params.logprobs:
            body["logprobs"], body["top_logprobs"] = True, 1  # llama.cpp sends chat logprobs only with top_logprobs
    return body


def parse_choice(response: Any, params: SamplingParams) -> Completion:
    """A Completion from a (chat) completion response; ValueError when it is not one."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise ValueError(f"no choices in response {str(response)[:120]!r}")
    choice = choices[0]
    message = getattr(choice, "message", None)
    text = message.content if message is not None else getattr(choice, "text", None)
    if not isinstance(text, str):
        raise ValueError(f"choice has no text: {str(choice)[:120]!r}")
    text, hit = apply_stop(text, params.stop)  # servers cut at stop strings; this makes sure
    usage = getattr(response, "usage", None)
    tokens = usage.completion_tokens if usage is not None and usage.completion_tokens is not None else 0
    finish = "length" if choice.finish_reason == "length" and not hit else "stop"
    return Completion(text, tokens, finish, sum_logprobs(choice) if params.logprobs else None)


def matched_stop(response: Any) -> tuple[bool, Any]:
    """(whether the server says which stop ended the choice, the stop string or token; None for EOS)."""
    extra = getattr(response.choices[0], "model_extra", None) or {}
    field = next((name for name in STOP_FIELDS if name in extra), None)
    return field is not None, extra.get(field)


def sum_logprobs(choice: Any) -> float | None:
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None:
        return None
    if getattr(logprobs, "content", None) is not None:  # chat format
        return float(sum(item.logprob for item in logprobs.content))
    values = getattr(logprobs, "token_logprobs", None)  # completions format
    return float(sum(v for v in values if v is not None)) if values is not None else None


@register_backend("openai")
class OpenAIGenerator:
    """`base_url` of an OpenAI-compatible server; `model_name` defaults to the one it serves."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model_name: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
    ) -> None:
        import openai

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = normalize_base_url(base_url)
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(api_key_env) or "not-needed",  # local servers take any key
            max_retries=max_retries,
            timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
        )
        self.model_name = model_name or self._served_model()

    def _served_model(self) -> str:
        import openai

        try:
            ids = [model.id for model in self.client.models.list()]
        except openai.APIConnectionError as exc:
            raise ModelError(f"cannot reach OpenAI-compatible server at {self.base_url}: {_reason(exc)}") from exc
        except (openai.APIError, ValueError, AttributeError, TypeError) as exc:
            raise ModelError(f"server at {self.base_url} gave no usable model list (GET /models): {_reason(exc)}") from exc
        if len(ids) != 1:
            raise ModelError(f"server at {self.base_url} serves {len(ids)} models ({', '.join(ids) or 'none'}): pass model_name")
        return ids[0]

    def fingerprint(self) -> str:
        return f"openai:{self.base_url}#{self.model_name}"

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Completion]]:
        return self.generate_requests([(prompt, params) for prompt in prompts])

    def generate_requests(self, requests: Sequence[tuple[Prompt, SamplingParams]]) -> list[list[Completion]]:
        """Each prompt with its own params; one request per sample, `concurrency` in flight."""
        if any(params.calculator and not isinstance(prompt, str) for prompt, params in requests):
            raise ModelError(f"{self.base_url}: calculator decoding continues the text after each call, "
                             "which needs plain-text prompts, not chat messages")
        jobs = []
        for prompt, params in requests:
            seed = random.getrandbits(62) if params.seed is None else params.seed
            jobs += [(prompt, params, sample_seed(seed, prompt_key(prompt), j) % SEED_LIMIT) for j in range(params.n)]
        outage = _Outage()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            done = iter(pool.map(lambda job: self._one(job[0], job[1], job[2], outage), jobs))
        return [[next(done) for _ in range(params.n)] for _, params in requests]

    def _one(self, prompt: Prompt, params: SamplingParams, seed: int, outage: "_Outage") -> Completion:
        if params.calculator:
            return self._with_calculator(prompt, params, seed, outage)
        return self._ask(prompt, params, seed, outage)[0]

    def _with_calculator(self, prompt: str, params: SamplingParams, seed: int, outage: "_Outage") -> Completion:
        """Ask in rounds that stop at `=`, answering calls in between. `tokens` counts what the
        server generated: the calculator's replies reach it as prompt."""
        text, tokens, logprob = "", 0, 0.0 if params.logprobs else None
        for round_index in range(MAX_ROUNDS):
            budget = params.max_new_tokens - tokens
            if budget < 1:
                return Completion(text, tokens, "length", logprob)
            asked = replace(params, stop=(*params.stop, CALL_END), max_new_tokens=budget, calculator=False)
            piece, response = self._ask(prompt + text, asked, (seed + round_index) % SEED_LIMIT, outage)
            if piece.error:
                return piece
            text, tokens = text + piece.text, tokens + piece.tokens
            logprob = None if logprob is None or piece.logprob is None else logprob + piece.logprob
            reported, stop = matched_stop(response) if piece.finish_reason == "stop" else (True, None)
            if not reported:
                return _failed(f"{self.base_url} does not say which stop string ended a completion, which calculator "
                               "decoding needs to tell `=` from the end of text (vLLM and SGLang servers do)")
            if stop != CALL_END or CALL_END in params.stop:
                return Completion(text, tokens, piece.finish_reason, logprob)
            text += CALL_END + (calculator_reply(text + CALL_END) or "")
            text, hit = apply_stop(text, params.stop)
            if hit:
                return Completion(text, tokens, "stop", logprob)
        return Completion(text, tokens, "length", logprob)

    def _ask(self, prompt: Prompt, params: SamplingParams, seed: int, outage: "_Outage") -> tuple[Completion, Any]:
        """One request: its completion (an error completion if it failed) and the response."""
        import openai

        if outage.reason:  # the server stayed unreachable through all retries: fail fast
            return _failed(outage.reason), None
        body = build_request(self.model_name, prompt, params, seed)
        where = f"{self.base_url} (model {self.model_name})"
        try:
            if "messages" in body:
                response = self.client.chat.completions.create(**body)
            else:
                response = self.client.completions.create(**body)
            return parse_choice(response, params), response
        except openai.APIConnectionError as exc:
            return _failed(outage.record(f"cannot reach {where} after {self.max_retries} retries: {_reason(exc)}")), None
        except openai.APIStatusError as exc:
            return _failed(f"{where}: HTTP {exc.status_code}: {_reason(exc)}"), None
        except (openai.APIError, ValueError, AttributeError, TypeError) as exc:  # JSON that is not a completion
            return _failed(f"malformed response from {where}: {_reason(exc)}"), None


class _Outage:
    """Shared by one generate call's workers: once the server is unreachable, stop waiting on it."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()

    def record(self, reason: str) -> str:
        with self._lock:
            self.reason = self.reason or reason
        return reason


def prompt_key(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def _failed(reason: str) -> Completion:
    return Completion("", 0, "error", error=reason)


def _reason(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message") or message
    text = (message or str(exc) or type(exc).__name__).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
