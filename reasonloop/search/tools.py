"""`pal` and `tir`: the model writes Python, the sandbox runs it.

    reasonloop eval --strategy pal ...                       # program-aided (PAL, PoT)
    reasonloop eval --strategy tir:max_calls=3 ...           # tool-integrated turns (ToRA-style)

`pal`: the model is asked for one program (`PAL_PROMPT`); the last ```python block of its
reply runs in the sandbox (`reasonloop.verify.sandbox`) and the last line the program
printed becomes the answer, appended to the completion as `#### VALUE`, so the one verifier
grades it like any other completion.

`tir`: the model reasons in text and writes a ```python block when it wants a computation
(`TIR_PROMPT`). Generation stops at the block's closing fence (the stop string `CODE_END`,
or the end of the text right after a fence), the block runs, and what it printed (or its
error) is appended as a ```output block; the model then continues. At most `max_calls`
programs run per candidate; a block written after that is not run and the candidate ends.
With `answer_from_output` (the default), a candidate whose text gives no final answer gets
the last line its last successful program printed as `#### VALUE`.

Prompts: a chat model (`PromptFormat.chat`) gets the prompt as its user message; each tool
output is then a user message and the model continues in a new assistant turn (this works
on every chat backend, hosted ones included). A plain-text model gets the format's prompt
with the question slot holding the instruction and the question, and continues the whole
text so far. These prompts need an instruction-following model.

Every program is a `ToolCall` (code, output, status, reason, seconds) on the candidate's
`Attempt.tool_calls`. Nothing a model writes stops a batch: no python block, an unclosed
block, a syntax error, a crash, no output, output that is not UTF-8, a timeout or a blown
limit is an `error` or `timeout` call with its reason, and the candidate is still graded.
Generation of turn t of sample j of problem p is seeded by (run seed, p, j, t) and cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Sequence

from reasonloop.records import TOOL_OUTPUT_CHARS, Attempt, Problem, ToolCall, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy, within_budget
from reasonloop.search.simple import DEFAULT_SAMPLE_TEMPERATURE, Majority

PAL_PROMPT = ("Write a Python program that solves the problem below. The program must print the final answer, "
              "a single number, as its last line of output. Reply with the program in one ```python code block."
              "\n\nProblem: {question}")
TIR_PROMPT = ("Solve the problem below step by step. When a computation helps, write it as a ```python code block "
              "that prints the result; the block is run and what it printed is shown to you in an ```output block. "
              "End with the line '#### <final answer>'.\n\nProblem: {question}")
CODE_END = "```\n"  # the closing fence of a code block (an opening fence is followed by `python`)
PYTHON_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.S)
PYTHON_OPENING = re.compile(r"```(?:python|py)[ \t]*\n")
SHOWN_OUTPUT_CHARS = 500  # of a program's output, shown to the model in `tir`


@dataclass(frozen=True)
class ToolOptions:
    """timeout_s, memory_mb: each program's wall-clock seconds and address space in the sandbox."""

    timeout_s: float = 5.0
    memory_mb: int = 512

    def __post_init__(self) -> None:
        from reasonloop.verify.sandbox import Limits

        Limits(self.timeout_s, self.memory_mb)  # refuses what the sandbox would

    def run(self, codes: Sequence[str]) -> list[ToolCall]:
        """Each program's call, in order (all of them run in parallel in the shared sandbox)."""
        from reasonloop.verify.sandbox import run_many

        results = run_many(list(codes), timeout_s=self.timeout_s, memory_mb=self.memory_mb) if codes else []
        return [tool_call(code, result) for code, result in zip(codes, results)]


@dataclass(frozen=True)
class TirOptions(ToolOptions):
    """As `pal`'s, and max_calls: programs run per candidate at most; answer_from_output: a candidate
    whose text gives no final answer takes its last successful program's last printed line."""

    max_calls: int = 4
    answer_from_output: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_calls < 1:
            raise StrategyError(f"max_calls must be >= 1, got {self.max_calls}")


def tool_call(code: str, result: Any) -> ToolCall:
    """The record of one sandbox run; exit 0 without usable output is an error (it gives no answer)."""
    status, reason = result.status, result.reason
    if status == "ok" and not result.stdout.strip():
        status = "error"
    elif status == "ok" and "not valid UTF-8" in reason:
        status = "error"
    return ToolCall(code=code, output=result.stdout[:TOOL_OUTPUT_CHARS], status=status, reason=reason,
                    seconds=round(result.seconds, 4))


def missing_code(reason: str) -> ToolCall:
    return ToolCall(code="", status="error", reason=reason)


def last_printed_line(call: ToolCall) -> str | None:
    lines = [line.strip() for line in call.output.splitlines() if line.strip()]
    return lines[-1] if call.status == "ok" and lines else None


def with_answer(text: str, answer: str | None) -> str:
    return text if answer is None else f"{text.rstrip()}\n#### {answer}"


def first_prompt(sampler: Sampler, template: str, problem: Problem) -> Any:
    """The strategy's prompt: a user message for a chat model, else the format's prompt around it."""
    instruction = template.format(question=problem.question)
    if sampler.prompt_format.chat:
        return [{"role": "user", "content": instruction}]
    return sampler.prompt_format.render_prompt(instruction)


def prompt_text(prompt: Any) -> str:
    return prompt[0]["content"] if isinstance(prompt, list) else prompt


def sampled_settings(settings: SolveSettings) -> SolveSettings:
    """n > 1 at temperature 0 would give n equal candidates."""
    if settings.n > 1 and settings.temperature == 0:
        return replace(settings, temperature=DEFAULT_SAMPLE_TEMPERATURE)
    return settings


class ToolStrategy:
    """Shared by `pal` and `tir`: the candidates' majority answer is chosen (one candidate: it)."""

    name: ClassVar[str] = ""
    needs_logprobs: ClassVar[bool] = False

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        return sampled_settings(settings)

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        return Majority().select(verdicts, rewards)

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)


@register_strategy("pal")
class Pal(ToolStrategy):
    """Program-aided: one program per candidate; its last printed line is the answer."""

    Options = ToolOptions

    def __init__(self, options: ToolOptions | None = None) -> None:
        self.options = options or ToolOptions()

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        prompts = [first_prompt(sampler, PAL_PROMPT, p) for p in problems]
        drawn = sampler.generate_prompts([(p, prompt, "pal") for p, prompt in zip(problems, prompts)], settings.n, settings)
        flat = [a for attempts in drawn for a in attempts]
        codes = [None if a.error else program_of(a.completion) for a in flat]
        calls = iter(self.options.run([code for code in codes if code is not None]))
        candidates = iter([self.candidate(a, code, calls) for a, code in zip(flat, codes)])
        results = []
        for prompt, attempts in zip(prompts, drawn):
            mine = [next(candidates).model_copy(update={"prompt": prompt_text(prompt)}) for _ in attempts]
            results.append(StrategyResult(within_budget(mine, settings.budget), sum(a.tokens for a in attempts),
                                          len(attempts)))
        return results

    @staticmethod
    def candidate(attempt: Attempt, code: str | None, calls) -> Attempt:
        if attempt.error:
            return attempt.model_copy(update={"tool_calls": []})
        call = next(calls) if code is not None else missing_code("no ```python block in the completion")
        completion = with_answer(attempt.completion, last_printed_line(call))
        return attempt.model_copy(update={"completion": completion, "tool_calls": [call]})


def program_of(text: str) -> str | None:
    """The last closed ```python block of `text` (None: there is none)."""
    blocks = PYTHON_BLOCK.findall(text)
    return blocks[-1] if blocks else None


@dataclass
class Trajectory:
    """One `tir` candidate being written: its turns, the outputs between them and its calls."""

    problem: Problem
    prompt: Any
    sample_index: int
    text: str = ""  # every turn and output block so far: the candidate's completion
    turns: list[str] = field(default_factory=list)  # for chat models: the assistant and output messages
    calls: list[ToolCall] = field(default_factory=list)
    tokens: int = 0
    generations: int = 0
    last: Attempt | None = None
    error: str | None = None
    done: bool = False

    def next_prompt(self, chat: bool) -> Any:
        if not chat:
            return self.prompt + self.text
        roles = ["assistant", "user"] * len(self.turns)
        return self.prompt + [{"role": role, "content": turn} for role, turn in zip(roles, self.turns)]

    def add_turn(self, attempt: Attempt) -> None:
        self.text += attempt.completion
        self.turns.append(attempt.completion)
        self.tokens += attempt.tokens
        self.generations += 1
        self.last = attempt
        self.error = self.error or attempt.error

    def add_output(self, call: ToolCall) -> None:
        self.calls.append(call)
        shown = call.output.strip()[-SHOWN_OUTPUT_CHARS:] if call.status == "ok" else call.reason
        block = f"```output\n{shown}\n```\n"
        self.text += ("" if self.text.endswith("\n") else "\n") + block
        self.turns.append(block)


def wanted_code(text: str, finish_reason: str | None) -> tuple[str | None, ToolCall | None]:
    """What a turn asks for: (a program to run, None), (None, an error call), or (None, None): no call."""
    stripped = text.rstrip()
    if stripped.endswith("```"):
        last = list(PYTHON_BLOCK.finditer(stripped))
        if last and last[-1].end() == len(stripped):
            return last[-1].group(1), None
        return None, missing_code("the turn ended at a code fence with no ```python block before it")
    closed = PYTHON_BLOCK.sub("", text)
    if finish_reason == "length" and PYTHON_OPENING.search(closed):
        return None, missing_code("the ```python block was not closed before max_new_tokens")
    return None, None


@register_strategy("tir")
class Tir(ToolStrategy):
    """Tool-integrated turns (ToRA-style): text and python blocks, each block run, its output shown."""

    Options = TirOptions

    def __init__(self, options: TirOptions | None = None) -> None:
        self.options = options or TirOptions()

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        chat = sampler.prompt_format.chat
        paths = [Trajectory(p, first_prompt(sampler, TIR_PROMPT, p), j) for p in problems for j in range(settings.n)]
        limit = settings.budget
        for turn in range(self.options.max_calls + 1):
            active = [t for t in paths if not t.done and (limit is None or t.tokens < limit)]
            if not active:
                break
            items = [(t.problem, t.next_prompt(chat), f"tir\0{t.sample_index}\0{turn}") for t in active]
            drawn = sampler.generate_prompts(items, 1, settings, stop=(CODE_END,))
            for t, (attempt,) in zip(active, drawn):
                t.add_turn(attempt)
            self.run_calls(active, turn == self.options.max_calls)
        return [self.result(paths[i * settings.n:(i + 1) * settings.n], settings) for i in range(len(problems))]

    def run_calls(self, active: list[Trajectory], last_turn: bool) -> None:
        """Run what each trajectory's newest turn asked for; those that asked for nothing are done."""
        to_run: list[tuple[Trajectory, str]] = []
        for t in active:
            code, failed = wanted_code(t.last.completion, t.last.finish_reason) if not t.last.error else (None, None)
            if code is not None and not last_turn:
                to_run.append((t, code))
                continue
            if failed is not None and not last_turn:
                t.calls.append(failed)
            t.done = True
        for (t, _), call in zip(to_run, self.options.run([code for _, code in to_run])):
            t.add_output(call)

    def result(self, paths: list[Trajectory], settings: SolveSettings) -> StrategyResult:
        candidates = [self.candidate(t) for t in paths]
        return StrategyResult(within_budget(candidates, settings.budget), sum(t.tokens for t in paths),
                              sum(t.generations for t in paths))

    def candidate(self, t: Trajectory) -> Attempt:
        from reasonloop.verify.extract import find_answer

        text = t.text
        if self.options.answer_from_output and find_answer(text) is None:
            ran = [call for call in t.calls if call.status == "ok"]
            text = with_answer(text, last_printed_line(ran[-1]) if ran else None)
        return t.last.model_copy(update={"prompt": prompt_text(t.prompt), "completion": text, "tokens": t.tokens,
                                         "sample_index": t.sample_index, "error": t.error, "tool_calls": t.calls})


def tool_call_stats(attempts: Sequence[Attempt]) -> dict[str, float | int]:
    """Programs run over `attempts`: how many, the share that ran (status ok), and calls per problem."""
    calls = [call for a in attempts for call in a.tool_calls or []]
    problems = len({a.problem_id for a in attempts})
    return {"problems": problems, "calls": len(calls), "ran": sum(c.status == "ok" for c in calls),
            "ran_share": sum(c.status == "ok" for c in calls) / len(calls) if calls else 0.0,
            "calls_per_problem": len(calls) / problems if problems else 0.0}
