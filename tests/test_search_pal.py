"""`pal` and `tir` on a scripted generator with the real sandbox: answers from programs, each call
recorded, bad programs as error/timeout calls in a batch that goes on, seeds, records and the report."""

import json
import re
from dataclasses import dataclass, field

import pytest

from reasonloop.models.base import Completion, apply_stop
from reasonloop.prompts import CHAT_FORMAT, PLAIN_FORMAT
from reasonloop.records import Attempt, Problem, ToolCall, read_records, write_records
from reasonloop.search import SolveSettings, StrategyError, get_strategy, strategy_names
from reasonloop.search.tools import tool_call_stats
from reasonloop.solve import solve

PAL_PROGRAMS = {
    "good": "print(6 * 7)",
    "syntax": "print(6 *",
    "silent": "x = 42",
    "bytes": "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\n')",
    "loop": "while True:\n    pass",
    "crash": "print(1)\nprint(1 / 0)",
}


def problem(case: str, answer: str = "42") -> Problem:
    return Problem(id=case, question=f"case:{case}", answer=answer)


def prompt_text(prompt) -> str:
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


@dataclass
class Script:
    """Replies by the `case:NAME` in the prompt; `tir` replies read the outputs shown so far."""

    name: str = "script"
    seen: list = field(default_factory=list)

    def fingerprint(self) -> str:
        return "script-1"

    def generate_requests(self, requests):
        return [[self.reply(prompt, params) for _ in range(params.n)] for prompt, params in requests]

    def generate(self, prompts, params):
        return self.generate_requests([(p, params) for p in prompts])

    def reply(self, prompt, params):
        self.seen.append((prompt, params))
        text = prompt_text(prompt)
        case = re.search(r"case:(\w+)", text).group(1)
        outputs = re.findall(r"```output\n(.*?)\n```", text, re.S)
        if case in PAL_PROGRAMS:
            body = f"Here:\n```python\n{PAL_PROGRAMS[case]}\n```\nThat prints it."
        elif case == "nocode":
            body = "No program for this one."
        else:
            body = tir_reply(case, outputs)
        if case == "unclosed":
            return Completion(body, 5, finish_reason="length")
        cut, hit = apply_stop(body, params.stop)
        return Completion(cut, len(cut.split()), stop_reason=hit)


def tir_reply(case: str, outputs: list[str]) -> str:
    if case == "tir" and not outputs:
        return "Multiply:\n```python\nprint(6 * 7)\n```\nnot reached"
    if case == "tir":
        return f"It printed {outputs[-1]}.\n#### {outputs[-1]}"
    if case == "again":  # always another program: stopped by max_calls
        return f"```python\nprint({len(outputs)})\n```\n"
    if case == "fence":  # a closing fence with no python block
        return "Look:\n```\n"
    if case == "unclosed":
        return "```python\nprint(6 *"
    if case == "fallback":  # never writes an answer itself
        return "```python\nprint(40 + 2)\n```\n" if not outputs else "Done."
    raise AssertionError(case)


def run(strategy, problems, fmt=CHAT_FORMAT, generator=None, **settings):
    return solve(problems, generator or Script(), SolveSettings(strategy=strategy, **settings), prompt_format=fmt)


def test_pal_and_tir_are_registered_with_their_options():
    assert {"pal", "tir"} <= set(strategy_names())
    assert get_strategy("tir:max_calls=2,timeout_s=1").options.max_calls == 2
    with pytest.raises(StrategyError, match="max_calls must be >= 1"):
        get_strategy("tir:max_calls=0")
    with pytest.raises(StrategyError, match="timeout_s must be a positive number"):
        get_strategy("pal:timeout_s=0")


def test_pal_answers_from_the_printed_line_and_bad_programs_never_stop_the_batch():
    cases = [*PAL_PROGRAMS, "nocode"]
    solved = run("pal:timeout_s=1", [problem(case) for case in cases])
    calls = {a.problem_id: a.tool_calls for a in solved.attempts}
    assert {case: [(c.status, c.reason) for c in calls[case]] for case in cases} == {
        "good": [("ok", "exit 0")],
        "syntax": [("error", "exit 1: SyntaxError: '(' was never closed")],
        "silent": [("error", "exit 0, printed nothing")],
        "bytes": [("error", "exit 0; stdout was not valid UTF-8 (bad bytes replaced)")],
        "loop": [("timeout", "timed out after 1 s (wall clock)")],
        "crash": [("error", "exit 1: ZeroDivisionError: division by zero")],
        "nocode": [("error", "no ```python block in the completion")],
    }
    good = solved.attempts[0]
    assert good.completion == "Here:\n```python\nprint(6 * 7)\n```\nThat prints it.\n#### 42"
    assert good.tool_calls[0].code == "print(6 * 7)\n" and good.tool_calls[0].output == "42\n"
    assert calls["crash"][0].output == "1\n" and calls["nocode"][0].code == ""
    assert [v.status for v in solved.all_verdicts] == ["correct"] + ["no_answer"] * 6  # every candidate graded
    assert solved.correct() == [True] + [False] * 6
    assert tool_call_stats(solved.attempts) == {"problems": 7, "calls": 7, "ran": 1, "ran_share": 1 / 7,
                                                "calls_per_problem": 1.0}


def test_pal_sends_its_own_prompt_as_a_chat_message_or_inside_a_plain_format():
    chat, plain = Script(), Script()
    run("pal", [problem("good")], generator=chat)
    run("pal", [problem("good")], fmt=PLAIN_FORMAT, generator=plain)
    (message,), _ = chat.seen[0]
    assert message["role"] == "user" and message["content"].startswith("Write a Python program that solves")
    assert message["content"].endswith("\n\nProblem: case:good")
    text, params = plain.seen[0]
    assert text.startswith("Question: Write a Python program") and text.endswith("Problem: case:good\nAnswer:")
    assert params.stop == ("\nQuestion:",)


def test_tir_runs_each_block_shows_its_output_and_the_model_continues():
    script = Script()
    solved = run("tir", [problem("tir")], generator=script)
    attempt = solved.attempts[0]
    assert attempt.completion == "Multiply:\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nIt printed 42.\n#### 42"
    assert [(c.code, c.output, c.status) for c in attempt.tool_calls] == [("print(6 * 7)\n", "42\n", "ok")]
    assert solved.correct() == [True] and solved.results[0].calls == 2
    second, params = script.seen[1]  # a chat model gets the output as a user turn and answers in a new turn
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"].endswith("```\n") and second[2]["content"] == "```output\n42\n```\n"
    assert params.stop == ("```\n",)


def test_tir_continues_the_text_of_a_plain_format_model():
    script = Script()
    run("tir", [problem("tir")], fmt=PLAIN_FORMAT, generator=script)
    second, _ = script.seen[1]
    assert second.endswith("Answer:Multiply:\n```python\nprint(6 * 7)\n```\n```output\n42\n```\n")


def test_tir_stops_at_max_calls_and_records_missing_blocks_as_errors():
    cases = ["again", "fence", "unclosed", "nocode", "fallback"]
    solved = run("tir:max_calls=3", [problem(case) for case in cases])
    by_case = {a.problem_id: a for a in solved.attempts}
    assert [c.output for c in by_case["again"].tool_calls] == ["0\n", "1\n", "2\n"]
    assert solved.results[0].calls == 4  # three turns with a program, one more whose program is not run
    assert [(c.status, c.reason) for c in by_case["fence"].tool_calls] == [
        ("error", "the turn ended at a code fence with no ```python block before it")]
    assert [(c.status, c.reason) for c in by_case["unclosed"].tool_calls] == [
        ("error", "the ```python block was not closed before max_new_tokens")]
    assert by_case["nocode"].tool_calls == []
    assert by_case["fallback"].completion.endswith("```output\n42\n```\nDone.\n#### 42")
    assert solved.correct() == [False, False, False, False, True]
    assert [v.status for v in solved.all_verdicts] == ["incorrect", "no_answer", "no_answer", "no_answer", "correct"]
    assert by_case["again"].completion.endswith("```output\n2\n```\n```python\nprint(3)\n```\n#### 2")
    assert tool_call_stats(solved.attempts)["calls"] == 3 + 1 + 1 + 0 + 1


def test_tir_seeds_each_sample_and_turn_apart():
    script = Script()
    run("tir", [problem("tir")], generator=script, n=2, temperature=0.5)
    seeds = [params.seed for _, params in script.seen]
    assert len(script.seen) == 4 and len(set(seeds)) == 4  # 2 samples x 2 turns


def test_tool_calls_round_trip_and_old_attempts_still_read(tmp_path):
    call = ToolCall(code="print(1)\n", output="1\n", status="ok", reason="exit 0", seconds=0.01)
    attempts = [Attempt(problem_id="p", prompt="Q", completion="A", tool_calls=[call]),
                Attempt(problem_id="q", prompt="Q", completion="B")]
    for name in ("a.jsonl", "a.parquet"):
        back = read_records(write_records(tmp_path / name, attempts), Attempt).records
        assert [a.tool_calls for a in back] == [[call], None]
    old = tmp_path / "old.jsonl"  # written before the field existed
    old.write_text(json.dumps({"problem_id": "p", "prompt": "Q", "completion": "A", "reward": None}) + "\n")
    assert read_records(old, Attempt).records[0].tool_calls is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem_id": "p", "prompt": "Q", "completion": "A",
                               "tool_calls": [{"code": "", "status": "maybe"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1, field 'tool_calls.0.status'"):
        read_records(bad, Attempt)


def test_the_trace_viewer_gets_each_call(tmp_path):
    from reasonloop.report.build import ROW_COLUMNS, trace_payload
    from reasonloop.report.rundata import RunData

    solved = run("pal", [problem("good"), problem("nocode")])
    data = RunData(name="pal", path=tmp_path, manifest={}, metrics={}, traces=solved.traces())
    rows = trace_payload(0, data)["rows"]
    column = ROW_COLUMNS.index("tool_calls")
    assert rows[0][column][0][:4] == ["print(6 * 7)\n", "42\n", "ok", "exit 0"]
    assert rows[1][column] == [["", "", "error", "no ```python block in the completion", 0.0]]


def test_eval_writes_the_calls_into_the_run_directory_and_recipes_take_the_strategies(tmp_path):
    from pydantic import ValidationError

    from reasonloop.evaluate import evaluate_suite, read_run
    from reasonloop.pipeline.stages.solving import EvaluateStage

    metrics = evaluate_suite(Script(), "gsm8k", tmp_path / "run", problems=[problem("tir"), problem("crash")],
                             strategy="tir:max_calls=2", prompt_format=CHAT_FORMAT, progress=False)
    assert metrics["accuracy"] == 0.5
    back = read_run(tmp_path / "run", strict=True)
    assert [[c.status for c in a.tool_calls] for a in back.attempts] == [["ok"], ["error", "error"]]  # crash: a block each turn
    assert EvaluateStage(name="eval", model="base", problems=["p"], strategy="pal:timeout_s=2").strategy == "pal:timeout_s=2"
    with pytest.raises(ValidationError, match="max_calls must be >= 1"):
        EvaluateStage(name="eval", model="base", problems=["p"], strategy="tir:max_calls=0")


@pytest.mark.slow
def test_smollm2_runs_and_records_every_program(shared_data):
    """A real model (SmolLM2-135M-Instruct, chat format) on 3 GSM8K problems: every python block
    it wrote was run (a sandbox time recorded) and kept, in order, with its output shown after it."""
    from reasonloop.models import load_generator, smollm2_gguf_path
    from reasonloop.search.tools import PYTHON_BLOCK
    from reasonloop.sources.datasets import load_problems

    problems = load_problems(shared_data / "gsm8k/test.jsonl", preset="gsm8k").records[:3]
    generator = load_generator(str(smollm2_gguf_path()), backend="hf")
    for strategy in ("pal", "tir:max_calls=2"):
        solved = solve(problems, generator, SolveSettings(strategy=strategy, max_new_tokens=160), prompt_format=CHAT_FORMAT)
        assert len(solved.all_verdicts) == len(solved.attempts) == 3  # every candidate graded
        for attempt in solved.attempts:
            ran = [call for call in attempt.tool_calls if call.code]
            assert all(call.seconds > 0 and call.code in attempt.completion for call in ran)
            if strategy == "pal":
                assert len(attempt.tool_calls) == 1
                blocks = PYTHON_BLOCK.findall(attempt.completion)
                assert [call.code for call in ran] == blocks[-1:]
            else:
                assert len(attempt.tool_calls) <= 2
                assert attempt.completion.count("```output\n") == len(ran)
                assert [call.code for call in ran] == PYTHON_BLOCK.findall(attempt.completion)[:len(ran)]


@pytest.mark.slow
def test_the_report_shows_each_program_as_text(tmp_path, monkeypatch):
    """Chromium: a sample's programs, their status and output are listed, model text never run."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from pathlib import Path

    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from reasonloop.report import build_report
    from reasonloop.rundir import make_manifest, write_run

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium not installed: run scripts/install-test-deps.sh")
    monkeypatch.setitem(PAL_PROGRAMS, "html", "print('<img src=x onerror=\"window.__pwned=1\">')")
    solved = run("pal", [problem("html"), problem("good")])
    write_run(tmp_path / "pal", manifest=make_manifest(suite="s", strategy="pal"), problems=solved.problems,
              attempts=solved.attempts, verdicts=solved.all_verdicts, metrics={})
    build_report([tmp_path / "pal"], tmp_path / "report.html")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    monkeypatch.setenv("SE_OFFLINE", "true")
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        driver.get((tmp_path / "report.html").as_uri())
        driver.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="0"]').click()
        calls = driver.find_element(By.CSS_SELECTOR, "#trace-detail .sample.selected .tool-calls")
        assert calls.find_element(By.TAG_NAME, "summary").text == "1 program(s) run"
        code = calls.find_element(By.CSS_SELECTOR, "pre.code").get_attribute("textContent")
        output = calls.find_element(By.CSS_SELECTOR, "pre.output").get_attribute("textContent")
        assert code == PAL_PROGRAMS["html"] + "\n" and output == '<img src=x onerror="window.__pwned=1">\n'
        assert calls.find_element(By.CSS_SELECTOR, ".badge").get_attribute("textContent") == "ok"
        assert driver.execute_script("return window.__pwned === undefined")
    finally:
        driver.quit()
