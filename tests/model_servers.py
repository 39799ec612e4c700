"""Real OpenAI-compatible servers for tests and benchmarks: llama.cpp's and `reasonloop serve`,
each started as a subprocess on 127.0.0.1 on a free port and stopped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

TINY_CHAT_TEMPLATE = "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/models", timeout=2) as response:
                json.load(response)
                return
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not answer within {timeout:.0f}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running(command: list[str], log: Path, port: int) -> Iterator[str]:
    """Start `command`, wait for /v1/models, yield the base URL; SIGTERM (then SIGKILL) at the end."""
    env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def llama_cpp_server(gguf: Path, log: Path, threads: int = 2, ctx: int = 2048):
    port = free_port()
    launcher = Path(__file__).with_name("llama_cpp_no_repack.py")  # why: see that file
    command = [sys.executable, str(launcher), "--model", str(gguf), "--model_alias", "smollm2",
               "--n_threads", str(threads), "--n_ctx", str(ctx), "--host", "127.0.0.1", "--port", str(port)]
    return running(command, log, port)


def reasonloop_server(model_dir: Path, log: Path):
    port = free_port()
    command = [sys.executable, "-m", "reasonloop.cli", "serve", str(model_dir), "--port", str(port), "--name", "tiny"]
    return running(command, log, port)


def make_chat_tiny_model(out_dir: Path) -> Path:
    """A tiny model whose tokenizer has a chat template, so both endpoints work."""
    from transformers import AutoTokenizer

    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = [f"Question: Tom has {i} apples and buys {2 * i} more. How many?\nAnswer: {i} + {2 * i} = {3 * i}\n#### {3 * i}" for i in range(300)]
    path = create_tiny_model(out_dir, texts, TinyConfig(max_positions=256), seed=0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path
