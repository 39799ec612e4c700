"""The `openai` backend against real servers this project did not write (llama.cpp serving
SmolLM2) and against `reasonloop serve`, plus stub servers for failures: 5xx/429 retries,
malformed JSON, hangs, unreachable servers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_servers import free_port, llama_cpp_server, make_chat_tiny_model, reasonloop_server
from reasonloop.models import Completion, ModelError, SamplingParams, load_generator, smollm2_gguf_path
from reasonloop.models.openai import OpenAIGenerator, build_request, normalize_base_url

CHAT = [{"role": "user", "content": "Name three colours."}]
TEXT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"


# -- real servers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (scripts/install-test-deps.sh installs it)")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_cpp_server(smollm2_gguf_path(), log) as url:
        yield url


@pytest.fixture(scope="session")
def reasonloop_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    with reasonloop_server(make_chat_tiny_model(root / "tiny"), root / "server.log") as url:
        yield url


@pytest.fixture(params=["llama.cpp", "reasonloop-serve"])
def server(request):
    return request.getfixturevalue("llama_url" if request.param == "llama.cpp" else "reasonloop_url")


def test_served_model_is_discovered(server):
    gen = load_generator(server)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.model_name in ("smollm2", "tiny")
    assert gen.fingerprint() == f"openai:{server}#{gen.model_name}"


def test_text_and_chat_prompts(server):
    gen = load_generator(server)
    got = gen.generate([TEXT, CHAT], SamplingParams(max_new_tokens=5, logprobs=True))
    for (completion,) in got:
        assert completion.error is None and completion.text and 0 < completion.tokens <= 5
        assert completion.finish_reason in ("stop", "length")
        assert completion.logprob is not None and completion.logprob <= 0


def test_same_seed_same_completion_with_sampling_on(server):
    gen = load_generator(server)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=7)
    first = gen.generate([TEXT], params)[0]
    assert gen.generate([TEXT], params)[0] == first
    assert len({c.text for c in first}) == 2  # n > 1 gives distinct samples even where the server ignores n
    other = gen.generate([TEXT], SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=8))[0]
    assert [c.text for c in other] != [c.text for c in first]


def test_concurrent_results_come_back_in_order(server):
    gen = load_generator(server, concurrency=4)
    prompts = [f"Question: {name} has {i} pens.\nAnswer:" for i, name in enumerate(["Tom", "Ana", "Lee", "Mia", "Raj", "Zoe"])]
    params = SamplingParams(temperature=0.9, max_new_tokens=4, seed=1)
    together = gen.generate(prompts, params)
    assert [gen.generate([p], params)[0] for p in prompts[::5]] == together[::5]


def test_length_and_stop(server):
    gen = load_generator(server)
    story = "Here is a long story about a dragon and a knight.\n\nOnce upon a time,"
    params = SamplingParams(temperature=1.0, max_new_tokens=12, seed=3)
    full = gen.generate([story], params)[0][0]
    assert full.finish_reason == "length" and full.tokens == 12
    stop = next(full.text[i : i + 2] for i in range(2, len(full.text) - 1) if full.text.find(full.text[i : i + 2]) == i and full.text[i : i + 2].isprintable())
    cut = gen.generate([story], SamplingParams(temperature=1.0, max_new_tokens=12, seed=3, stop=(stop,)))[0][0]
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"


def test_overlong_prompt_fails_alone(server):
    gen = load_generator(server)
    got = gen.generate(["1 " * 3000, TEXT], SamplingParams(max_new_tokens=4))
    assert got[0][0].finish_reason == "error" and "HTTP 400" in got[0][0].error and server in got[0][0].error
    assert "context" in got[0][0].error
    assert got[1][0].error is None and got[1][0].tokens > 0


def test_reasonloop_serve_rejects_bad_fields_by_name(reasonloop_url):
    import urllib.error
    import urllib.request

    body = json.dumps({"prompt": "hi", "max_tokens": 0}).encode()
    request = urllib.request.Request(reasonloop_url + "/completions", body, {"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 422 and "max_tokens" in err.value.read().decode()


# -- stub servers for failures -----------------------------------------------------------


COMPLETION = {"id": "x", "object": "text_completion", "created": 0, "model": "stub",
              "choices": [{"index": 0, "text": " 7", "finish_reason": "stop", "logprobs": None}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
MODELS = {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "test"}]}


class Stub:
    """A loopback HTTP server answering POSTs with `respond(n)` -> (status, body, headers);
    `bodies[n - 1]` is the JSON body of request n."""

    def __init__(self, respond):
        self.respond, self.requests, self.headers, self.bodies = respond, 0, [], []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._send(200, json.dumps(MODELS).encode(), {})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    stub.requests += 1
                    number = stub.requests
                    stub.headers.append(self.headers)
                    stub.bodies.append(json.loads(raw))
                status, body, headers = stub.respond(number)
                self._send(status, body, headers)

            def _send(self, status, body, headers):
                self.send_response(status)
                for key, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:  # the client gave up waiting (timeout tests)
                    pass

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    servers = []

    def start(respond):
        servers.append(Stub(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def ok(number):
    return 200, json.dumps(COMPLETION).encode(), {}


def test_5xx_and_429_are_retried_until_every_request_succeeds(stub):
    def flaky(number):
        if number % 3 == 1:
            return 500, b'{"error": {"message": "boom"}}', {}
        if number % 3 == 2:
            return 429, b'{"error": {"message": "slow down"}}', {"retry-after-ms": "10"}
        return ok(number)

    server = stub(flaky)
    gen = load_generator(server.url, max_retries=3, concurrency=1)  # one at a time: each sees 500, 429, then 200
    got = gen.generate(["a", "b"], SamplingParams(n=2))
    assert [c.error for row in got for c in row] == [None] * 4
    assert all(c.text == " 7" for row in got for c in row)
    assert server.requests == 4 * 3


def test_client_errors_are_not_retried(stub):
    server = stub(lambda n: (400, b'{"error": {"message": "bad stop list"}}', {}))
    got = load_generator(server.url).generate(["a"], SamplingParams())[0][0]
    assert got.finish_reason == "error" and "HTTP 400: bad stop list" in got.error and server.url in got.error
    assert server.requests == 1


@pytest.mark.parametrize("body", [b"{not json", b'{"choices": []}', b'"just a string"', b"<html>oops</html>"])
def test_malformed_json_is_a_per_item_error(stub, body):
    server = stub(lambda n: (200, body, {}))
    got = load_generator(server.url, max_retries=0).generate(["a", "b"], SamplingParams())
    assert all(row[0].finish_reason == "error" and server.url in row[0].error for row in got)
    assert "malformed response" in got[0][0].error and "\n" not in got[0][0].error


def test_malformed_model_list_is_a_clear_error(stub):
    server = stub(ok)
    server.server.RequestHandlerClass.do_GET = lambda self: self._send(200, b"[1, 2", {})
    with pytest.raises(ModelError, match="no usable model list"):
        load_generator(server.url)


def test_a_hanging_server_times_out(stub):
    server = stub(lambda n: (time.sleep(5), ok(n))[1])
    start = time.monotonic()
    got = load_generator(server.url, timeout=0.5, max_retries=0).generate(["a"], SamplingParams())[0][0]
    assert time.monotonic() - start < 4
    assert got.finish_reason == "error" and "cannot reach" in got.error and "timed out" in got.error.lower()


def test_unreachable_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError, match=f"cannot reach OpenAI-compatible server at {url}"):
        load_generator(url, max_retries=0)
    gen = load_generator(url, model_name="m", max_retries=1)
    start = time.monotonic()
    got = gen.generate([f"p{i}" for i in range(40)], SamplingParams())
    assert time.monotonic() - start < 10  # after the first outage the rest fail fast
    assert all(row[0].finish_reason == "error" and f"cannot reach {url} (model m)" in row[0].error for row in got)


def test_api_key_comes_from_the_named_environment_variable(stub, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "sekrit")
    server = stub(ok)
    load_generator(server.url, api_key_env="MY_SERVER_KEY").generate(["a"], SamplingParams())
    assert server.headers[-1]["Authorization"] == "Bearer sekrit"


def test_request_mapping():
    params = SamplingParams(n=4, temperature=0.7, top_p=0.9, max_new_tokens=32, stop=("\n\n",), logprobs=True)
    text = build_request("m", "2 + 3 =", params, seed=11)
    assert text == {"model": "m", "max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "seed": 11, "n": 1,
                    "stop": ["\n\n"], "prompt": "2 + 3 =", "logprobs": 1}
    chat = build_request("m", CHAT, SamplingParams(), seed=0)
    assert chat["messages"] == CHAT and "prompt" not in chat and "stop" not in chat and "logprobs" not in chat
    assert normalize_base_url("http://h:1") == normalize_base_url("http://h:1/") == "http://h:1/v1"
    assert normalize_base_url("https://api.example.com/v1/") == "https://api.example.com/v1"


# -- calculator decoding over a server: stop at `=`, answer the call, continue ------------------

QUESTION = "Question: Ann has 48 apples and eats half. How many are left?\nAnswer:"
CALC_SCRIPT = {  # prompt -> (text, completion tokens, finish_reason, stop the server says it hit)
    QUESTION: (" Half is 48/2 ", 5, "stop", "="),
    QUESTION + " Half is 48/2 =": (" <<48/2", 4, "stop", "="),
    QUESTION + " Half is 48/2 = <<48/2=24>>": ("24 left.\n#### 24", 6, "stop", None),
}


def scripted_server(stub, script, stop_field="stop_reason"):
    """A stub continuing each prompt as `script` says, naming the stop it hit in `stop_field` (None: not at all)."""
    def respond(number):
        prompt = server.bodies[number - 1].get("prompt")
        if prompt not in script:
            return 400, json.dumps({"error": {"message": f"unscripted prompt {prompt!r}"}}).encode(), {}
        text, tokens, finish, stop = script[prompt]
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        if stop_field:
            choice[stop_field] = stop
        usage = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
        return 200, json.dumps({**COMPLETION, "choices": [choice], "usage": usage}).encode(), {}

    server = stub(respond)
    return server


@pytest.mark.parametrize("stop_field", ["stop_reason", "matched_stop"])  # vLLM, SGLang
def test_calculator_answers_calls_between_requests(stub, stop_field):
    server = scripted_server(stub, CALC_SCRIPT, stop_field)
    gen = load_generator(server.url)
    params = SamplingParams(max_new_tokens=64, stop=("\nQuestion:",), seed=5, calculator=True)
    got = gen.generate([QUESTION], params)[0][0]
    assert got == Completion(" Half is 48/2 = <<48/2=24>>24 left.\n#### 24", 15, "stop")
    assert [body["prompt"] for body in server.bodies] == list(CALC_SCRIPT)  # the server continues from the reply
    assert [body["max_tokens"] for body in server.bodies] == [64, 59, 55]  # one token budget across rounds
    assert all(body["stop"] == ["\nQuestion:", "="] for body in server.bodies)
    assert len({body["seed"] for body in server.bodies}) == 3
    assert gen.generate([QUESTION], params)[0][0] == got  # same seed, same requests
    assert server.bodies[3:] == server.bodies[:3]


def test_without_the_calculator_one_request_without_the_equals_stop(stub):
    server = scripted_server(stub, CALC_SCRIPT)
    got = load_generator(server.url).generate([QUESTION], SamplingParams(max_new_tokens=64, stop=("\nQuestion:",)))[0][0]
    assert got == Completion(" Half is 48/2 ", 5, "stop")
    assert server.requests == 1 and server.bodies[0]["stop"] == ["\nQuestion:"]


def test_calculator_rounds_share_max_new_tokens(stub):
    server = scripted_server(stub, CALC_SCRIPT)
    got = load_generator(server.url).generate([QUESTION], SamplingParams(max_new_tokens=9, calculator=True))[0][0]
    assert got == Completion(" Half is 48/2 = <<48/2=24>>", 9, "length")
    assert [body["max_tokens"] for body in server.bodies] == [9, 4]


def test_calculator_ends_at_the_users_stop_strings_and_eos(stub):
    server = scripted_server(stub, {QUESTION: (" 48/2 is 24.", 6, "stop", "\nQuestion:")})
    got = load_generator(server.url).generate([QUESTION], SamplingParams(stop=("\nQuestion:",), calculator=True))[0][0]
    assert got == Completion(" 48/2 is 24.", 6, "stop") and server.requests == 1
    server = scripted_server(stub, {QUESTION: (" 24", 2, "length", None)})
    got = load_generator(server.url).generate([QUESTION], SamplingParams(max_new_tokens=2, calculator=True))[0][0]
    assert got == Completion(" 24", 2, "length") and server.requests == 1


def test_calculator_needs_a_server_that_names_the_stop_it_hit(stub):
    server = scripted_server(stub, CALC_SCRIPT, stop_field=None)
    got = load_generator(server.url).generate([QUESTION], SamplingParams(calculator=True))[0][0]
    assert got.finish_reason == "error" and "does not say which stop string" in got.error and server.url in got.error
    assert server.requests == 1


def test_calculator_needs_plain_text_prompts(stub):
    server = scripted_server(stub, CALC_SCRIPT)
    with pytest.raises(ModelError, match="plain-text prompts"):
        load_generator(server.url).generate([QUESTION, CHAT], SamplingParams(calculator=True))
    assert server.requests == 0
