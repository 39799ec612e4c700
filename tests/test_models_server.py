"""`reasonloop serve`'s batcher: requests that arrive while the model is busy share one batch."""

import threading
import time

import pytest

from reasonloop.models.base import Completion, SamplingParams
from reasonloop.models.server import Batcher, default_model_id


class SlowEcho:
    """A generator that takes 0.3 s per call and echoes each prompt with its seed."""

    name = "echo"

    def __init__(self):
        self.calls: list[int] = []

    def generate_requests(self, requests):
        self.calls.append(len(requests))
        time.sleep(0.3)
        return [[Completion(f"{prompt}/{params.seed}", 1)] for prompt, params in requests]

    def fingerprint(self):
        return "echo"


def test_requests_arriving_while_busy_are_batched_and_answered_in_order():
    generator = SlowEcho()
    batcher = Batcher(generator)
    first = batcher.submit("p0", SamplingParams(seed=0))
    time.sleep(0.1)  # the first call is running now
    futures = {}
    threads = [threading.Thread(target=lambda i=i: futures.__setitem__(i, batcher.submit(f"p{i}", SamplingParams(seed=i)))) for i in range(1, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.result(timeout=5)[0].text == "p0/0"
    assert [futures[i].result(timeout=5)[0].text for i in range(1, 8)] == [f"p{i}/{i}" for i in range(1, 8)]
    assert generator.calls == [1, 7]


def test_a_failing_generator_fails_its_requests_not_the_server():
    class Broken(SlowEcho):
        def generate_requests(self, requests):
            raise RuntimeError("weights on fire")

    batcher = Batcher(Broken())
    with pytest.raises(RuntimeError, match="weights on fire"):
        batcher.submit("p", SamplingParams()).result(timeout=5)
    assert Batcher(SlowEcho()).submit("q", SamplingParams(seed=3)).result(timeout=5)[0].text == "q/3"


def test_default_model_id():
    assert default_model_id("/x/runs/tiny") == "tiny"
    assert default_model_id("/x/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct.Q4_1"
