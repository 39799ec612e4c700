"""The openai backend against a real llama.cpp server (SmolLM2-135M-Instruct GGUF) on loopback.

1. Throughput with concurrency 1 vs 8 on the same workload (generated tokens/s).
2. Robustness: 200 requests through a loopback proxy that answers every 10th POST it sees
   (retries included) with HTTP 500. Every request must come back, and with the same text as the same
   seeded request sent straight to the server.

    flock /tmp/rl-heavy.lock env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_openai.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from model_servers import llama_cpp_server  # noqa: E402

from reasonloop.models import SamplingParams, load_generator, smollm2_gguf_path  # noqa: E402

TOPICS = ["apples", "trains", "rivers", "robots", "cats", "music", "tea", "snow", "bikes", "stars"]


class FailureProxy:
    """Forwards to `upstream`, but answers every `every`-th POST with HTTP 500 instead."""

    def __init__(self, upstream: str, every: int) -> None:
        self.upstream, self.every = upstream.rstrip("/"), every
        self.posts = self.injected = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with proxy.lock:
                    proxy.posts += 1
                    fail = proxy.posts % proxy.every == 0
                    proxy.injected += fail
                if fail:
                    self._reply(500, b'{"error": {"message": "injected failure"}}')
                else:
                    self._forward(body)

            def _forward(self, body):
                request = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), body, {"content-type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=300) as response:
                        self._reply(response.status, response.read())
                except urllib.error.HTTPError as err:
                    self._reply(err.code, err.read())

            def _reply(self, status, payload):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def prompts(count: int) -> list:
    return [[{"role": "user", "content": f"Write one sentence about {TOPICS[i % len(TOPICS)]} (#{i})."}] for i in range(count)]


def throughput(url: str, concurrency: int, batch: list, params: SamplingParams) -> tuple[float, int]:
    gen = load_generator(url, concurrency=concurrency)
    start = time.perf_counter()
    results = gen.generate(batch, params)
    seconds = time.perf_counter() - start
    assert all(c.error is None for row in results for c in row), [c.error for row in results for c in row if c.error]
    tokens = sum(c.tokens for row in results for c in row)
    return tokens / seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput-requests", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--failure-requests", type=int, default=200)
    parser.add_argument("--failure-rate", type=float, default=0.10)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp server threads")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with TemporaryDirectory() as tmp, llama_cpp_server(smollm2_gguf_path(), Path(tmp) / "llama.log", threads=args.threads) as url:
        params = SamplingParams(temperature=0.7, max_new_tokens=args.tokens, seed=0)
        batch = prompts(args.throughput_requests)
        load_generator(url).generate(batch[:2], params)  # warm-up
        runs: dict[int, list[tuple[float, int]]] = {1: [], 8: []}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            for concurrency in (1, 8):
                runs[concurrency].append(throughput(url, concurrency, batch, params))
        rate1, rate8 = (statistics.median(rate for rate, _ in runs[c]) for c in (1, 8))
        print(f"llama.cpp server, SmolLM2-135M Q4_1, {len(batch)} chat requests x {args.tokens} max tokens, "
              f"median of {args.repeats}: concurrency 1 {rate1:.1f} tok/s, concurrency 8 {rate8:.1f} tok/s, "
              f"ratio {rate8 / rate1:.2f}x ({runs[1][0][1]} / {runs[8][0][1]} tokens per run)")

        short = SamplingParams(temperature=0.7, max_new_tokens=8, seed=1)
        many = prompts(args.failure_requests)
        direct = load_generator(url, concurrency=8).generate(many, short)
        proxy = FailureProxy(url, every=round(1 / args.failure_rate))
        try:
            start = time.perf_counter()
            through_proxy = load_generator(proxy.url, concurrency=8, max_retries=6).generate(many, short)
            seconds = time.perf_counter() - start
        finally:
            proxy.close()
        recovered = sum(1 for row in through_proxy if row[0].error is None)
        identical = sum(1 for a, b in zip(direct, through_proxy) if a == b)
        print(f"failure injection: {len(many)} requests, {proxy.injected} of {proxy.posts} POSTs answered 500 "
              f"({100 * proxy.injected / proxy.posts:.1f}%), {recovered}/{len(many)} recovered, {len(many) - recovered} lost, "
              f"{identical}/{len(many)} identical to the direct run, {seconds:.1f}s")
        if recovered != len(many):
            sys.exit(1)


if __name__ == "__main__":
    main()
