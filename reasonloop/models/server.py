"""`reasonloop serve MODEL`: an OpenAI-compatible HTTP server over any `Generator`.

So a model trained here can be evaluated by other tools (lm-eval-harness, the `openai`
client, reasonloop's own `openai` backend). FastAPI validates requests and names the bad
field; uvicorn serves them. Requests that arrive together are handed to the generator as
one batch (`generate_requests` on the hf backend), so eight concurrent clients cost about
one batched decode, not eight.

Endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (no
streaming; each choice says which stop string ended it in `stop_reason`, as vLLM does),
and `POST /v1/reload` `{"model": PATH}` to serve another checkpoint (self-training rounds). Log-probabilities come back as one entry per choice holding the sum over the
completion's tokens. The `model` field of a request is accepted whatever it says.

    reasonloop serve runs/tiny --port 8000
    curl localhost:8000/v1/completions -d '{"prompt": "Question: 2 + 3?\\nAnswer:", "max_tokens": 32}' \\
         -H 'content-type: application/json'
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from reasonloop.models.base import Completion, Generator, Prompt, SamplingParams, generate_each

Item = tuple[Prompt, SamplingParams, "Future[list[Completion]]"]


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Optional[str] = None
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=128)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    stream: bool = False

    def params(self, logprobs: bool, default_max_tokens: int) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return SamplingParams(
            n=self.n, temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_tokens or default_max_tokens,
            stop=tuple(stop), seed=self.seed, logprobs=logprobs,
        )


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]]
    logprobs: Optional[int] = Field(None, ge=0)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    max_completion_tokens: Optional[int] = Field(None, ge=1)


class ReloadRequest(BaseModel):
    model: str = Field(description="The checkpoint to serve from now on (same backend and options).")
    name: Optional[str] = Field(None, description="The model id to serve it under (default: its directory name).")


@dataclass
class ServedModel:
    model_id: str


class Batcher:
    """Hands requests that arrive while the generator is busy to it as one batch."""

    def __init__(self, generator: Generator, window_s: float = 0.002, max_requests: int = 256) -> None:
        self.generator, self.window_s, self.max_requests = generator, window_s, max_requests
        self.queue: "queue.Queue[Item]" = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, name="reasonloop-batcher", daemon=True).start()

    def swap(self, generator: Generator) -> None:
        """Serve `generator` from the next batch on; the batch in flight finishes on the old one."""
        with self.lock:
            self.generator = generator

    def submit(self, prompt: Prompt, params: SamplingParams) -> "Future[list[Completion]]":
        future: Future[list[Completion]] = Future()
        self.queue.put((prompt, params, future))
        return future

    def _loop(self) -> None:
        while True:
            pending = [self.queue.get()]
            deadline = time.monotonic() + self.window_s
            while len(pending) < self.max_requests:
                try:
                    pending.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                with self.lock:
                    results = self._generate(pending)
                for (_, _, future), result in zip(pending, results):
                    future.set_result(result)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                for _, _, future in pending:
                    future.set_exception(exc)

    def _generate(self, pending: list[Item]) -> list[list[Completion]]:
        return generate_each(self.generator, [(prompt, params) for prompt, params, _ in pending])


def create_app(generator: Generator, model_id: str, loader: Optional[Callable[[str], Generator]] = None):
    """The FastAPI app serving `generator` under the name `model_id`; with `loader`, `POST /v1/reload`
    swaps in another checkpoint (self-training rounds sample each round's new weights)."""
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    app = FastAPI(title="reasonloop serve", version="1")
    batcher = Batcher(generator)
    state = ServedModel(model_id)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error", "code": status}}, status)

    async def run(prompts: list[Prompt], request: _Sampling, logprobs: bool, default_max_tokens: int):
        if request.stream:
            return None, error(400, "stream=true is not supported by reasonloop serve")
        try:
            params = request.params(logprobs, default_max_tokens)
        except ValueError as exc:
            return None, error(400, str(exc))
        futures = [batcher.submit(prompt, params) for prompt in prompts]
        try:
            results = [await run_in_threadpool(future.result) for future in futures]
        except Exception as exc:  # noqa: BLE001 - a bug or a broken model: say what, as JSON
            return None, error(500, f"{type(exc).__name__}: {exc}")
        failed = next((c.error for row in results for c in row if c.finish_reason == "error"), None)
        if failed:
            return None, error(500 if "generation failed" in failed else 400, failed)
        return results, None

    def usage(prompts: list[Prompt], results: list[list[Completion]]) -> dict[str, int]:
        count = getattr(generator, "count_tokens", None)
        prompt_tokens = sum(count(p) for p in prompts) if count else 0
        completion_tokens = sum(c.tokens for row in results for c in row)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}

    @app.post("/v1/reload")
    async def reload(request: ReloadRequest):
        if loader is None:
            return error(400, "this server was started without a loader: it cannot reload")
        try:
            new = await run_in_threadpool(loader, request.model)
        except Exception as exc:  # noqa: BLE001 - a bad path or broken checkpoint: the old model keeps serving
            return error(400, f"cannot load {request.model}: {type(exc).__name__}: {exc}")
        await run_in_threadpool(batcher.swap, new)
        state.model_id = request.name or default_model_id(request.model)
        return {"model": state.model_id, "fingerprint": new.fingerprint()}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": state.model_id, "object": "model", "created": 0, "owned_by": "reasonloop"}]}

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest):
        prompts: list[Prompt] = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        results, failure = await run(prompts, request, request.logprobs is not None, default_max_tokens=16)
        if failure is not None:
            return failure
        choices = [
            {"index": i, "text": c.text, "finish_reason": c.finish_reason, "stop_reason": c.stop_reason, "logprobs": completion_logprobs(c) if request.logprobs is not None else None}
            for i, c in enumerate(c for row in results for c in row)
        ]
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": state.model_id,
                "choices": choices, "usage": usage(prompts, results)}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest):
        messages: Prompt = [m.model_dump() for m in request.messages]
        request.max_tokens = request.max_completion_tokens or request.max_tokens
        results, failure = await run([messages], request, request.logprobs, default_max_tokens=SamplingParams().max_new_tokens)
        if failure is not None:
            return failure
        choices = [
            {"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason,
             "stop_reason": c.stop_reason,
             "logprobs": chat_logprobs(c) if request.logprobs else None}
            for i, c in enumerate(results[0])
        ]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": state.model_id,
                "choices": choices, "usage": usage([messages], results)}

    return app


def completion_logprobs(c: Completion) -> dict[str, Any] | None:
    if c.logprob is None:
        return None
    return {"tokens": [c.text], "token_logprobs": [c.logprob], "top_logprobs": None, "text_offset": [0]}


def chat_logprobs(c: Completion) -> dict[str, Any] | None:
    if c.logprob is None:
        return None
    return {"content": [{"token": c.text, "logprob": c.logprob, "bytes": None, "top_logprobs": []}]}


def default_model_id(model: str) -> str:
    path = Path(model)
    return path.stem if path.suffix == ".gguf" else path.name or model


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None, backend: str = "auto", **options) -> None:
    """Load `model` and serve it until interrupted."""
    import uvicorn

    from reasonloop.models import load_generator

    def loader(path: str) -> Generator:
        return load_generator(path, backend=backend, **options)

    model_id = name or default_model_id(model)
    print(f"serving {model} as {model_id!r} at http://{host}:{port}/v1", flush=True)
    uvicorn.run(create_app(loader(model), model_id, loader), host=host, port=port, log_level="warning")


def reload_server(base_url: str, model: str | Path, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Ask a `reasonloop serve` at `base_url` (…/v1) to serve checkpoint `model` from now on."""
    import json
    import urllib.error
    import urllib.request

    from reasonloop.models.base import ModelError

    url = base_url.rstrip("/") + "/reload"
    request = urllib.request.Request(url, json.dumps({"model": str(model)}).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(body)["error"]["message"]
        raise ModelError(f"{url} did not load {model} (HTTP {exc.code}): {body[:300]}") from None
    except OSError as exc:
        raise ModelError(f"cannot reach {url} to load {model}: {exc}") from exc
