"""evaluate_suite end to end: run directory, metrics, resume from the cache after an interrupt.

The generator here is a small deterministic stand-in (the real tiny model is exercised in
test_evaluate_tiny.py); grading is the real shared verifier.
"""

import hashlib
import json
from dataclasses import replace

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.evaluate import evaluate_suite, load_suite, read_run
from reasonloop.models.base import Completion
from reasonloop.prompts import PromptFormat
from reasonloop.records import Problem

FORMAT = PromptFormat(name="test", prompt="Question: {question}\nAnswer:", stop=("\nQuestion:",))


class ScriptedGenerator:
    """Answers correctly when hash(prompt, seed, sample) is even; counts prompts generated."""

    name = "scripted"

    def __init__(self, answers, fail_after_calls=None):
        self.answers = answers
        self.calls = 0
        self.prompts = 0
        self.fail_after_calls = fail_after_calls

    def fingerprint(self):
        return "scripted-v1"

    def generate(self, prompts, params):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt
        self.calls += 1
        self.prompts += len(prompts)
        return [[self.complete(prompt, params, j) for j in range(params.n)] for prompt in prompts]

    def complete(self, prompt, params, j):
        question = prompt.removeprefix("Question: ").removesuffix("\nAnswer:")
        digest = int(hashlib.sha256(f"{prompt}|{params.seed}|{j}".encode()).hexdigest(), 16)
        answer = self.answers[question] if digest % 2 == 0 else str(int(self.answers[question]) + 1)
        return Completion(text=f" So it is {answer}.\n#### {answer}", tokens=7)


def make_problems(count=20):
    return [Problem(question=f"What is {i} plus {i + 3}?", answer=str(2 * i + 3), meta={"steps": 1 + i % 3})
            for i in range(count)]


def run_eval(generator, problems, out, **kwargs):
    return evaluate_suite(generator, load_suite("gsm8k"), out, problems=problems, prompt_format=FORMAT,
                          progress=False, batch_size=4, **kwargs)


def test_run_directory_and_metrics(tmp_path):
    problems = make_problems()
    generator = ScriptedGenerator({p.question: p.answer for p in problems})
    metrics = run_eval(generator, problems, tmp_path / "run", strategy="sample", n=4)
    run = read_run(tmp_path / "run", strict=True)
    assert run.manifest["complete"] and run.manifest["strategy"] == "sample"
    assert run.manifest["model_fingerprint"] == "scripted-v1" and run.manifest["verifier_version"]
    assert run.manifest["sampling"]["n"] == 4 and run.manifest["sampling"]["temperature"] == 0.7
    assert len(run.attempts) == 80 and len(run.verdicts) == 80
    correct = sum(a.completion.endswith(p.answer) for p in problems for a in run.attempts if a.problem_id == p.id)
    assert metrics["status_counts"]["correct"] == correct
    assert metrics["accuracy"] == pytest.approx(correct / 80)
    assert list(metrics["pass_at_k"]) == ["1", "2", "4"]
    assert run.attempts[0].prompt == FORMAT.render_prompt(problems[0].question)
    assert {v.sample_index for v in run.verdicts} == {0, 1, 2, 3}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics


def test_the_prompt_formats_calculator_reaches_the_generator_and_the_records(tmp_path):
    problems = make_problems(4)
    generator = ScriptedGenerator({p.question: p.answer for p in problems})
    asked = []
    generate = generator.generate
    generator.generate = lambda prompts, params: (asked.append(params), generate(prompts, params))[1]
    evaluate_suite(generator, load_suite("gsm8k"), tmp_path / "run", problems=problems, progress=False,
                   prompt_format=replace(FORMAT, calculator=True))
    assert asked and all(params.calculator and params.stop == FORMAT.stop for params in asked)
    run = read_run(tmp_path / "run", strict=True)
    assert run.manifest["sampling"]["calculator"] is True
    assert all(a.sampling.calculator for a in run.attempts)
    run_eval(ScriptedGenerator({p.question: p.answer for p in problems}), problems, tmp_path / "plain")
    assert not any(a.sampling.calculator for a in read_run(tmp_path / "plain").attempts)


def test_interrupted_run_resumes_without_regenerating_and_gives_the_same_bytes(tmp_path):
    problems = make_problems(22)  # 6 batches of 4 (the last holds 2)
    answers = {p.question: p.answer for p in problems}
    reference = ScriptedGenerator(answers)
    run_eval(reference, problems, tmp_path / "whole", strategy="sample", n=2)
    assert reference.calls == 22  # a backend without generate_requests: one call per problem (its own seed)

    interrupted = ScriptedGenerator(answers, fail_after_calls=16)  # 4 batches finish
    with pytest.raises(KeyboardInterrupt):
        run_eval(interrupted, problems, tmp_path / "resumed", strategy="sample", n=2)
    assert read_run(tmp_path / "resumed", records=False).manifest["complete"] is False
    resumed = ScriptedGenerator(answers)
    run_eval(resumed, problems, tmp_path / "resumed", strategy="sample", n=2)
    assert (resumed.calls, resumed.prompts) == (6, 6)  # only the two unfinished batches
    for name in ("attempts.jsonl", "verdicts.jsonl", "metrics.json", "problems.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name

    again = ScriptedGenerator(answers)
    run_eval(again, problems, tmp_path / "resumed", strategy="sample", n=2)
    assert again.calls == 0
    # the same directory never takes another run's results
    with pytest.raises(ReasonloopError, match=r"resumed holds another run \(sampling .*'n': 2.*'n': 3.*choose another output"):
        run_eval(again, problems, tmp_path / "resumed", strategy="sample", n=3)
    assert (tmp_path / "whole" / "attempts.jsonl").read_bytes() == (tmp_path / "resumed" / "attempts.jsonl").read_bytes()


class FailingFor(ScriptedGenerator):
    """Fails every prompt that contains `marker`, with a per-prompt message."""

    def __init__(self, answers, marker, message=None):
        super().__init__(answers)
        self.marker, self.message = marker, message

    def complete(self, prompt, params, j):
        if self.marker in prompt:
            error = self.message or f"prompt of {len(prompt)} characters is longer than the context window (512)"
            return Completion(text="", finish_reason="error", error=error)
        return super().complete(prompt, params, j)


def test_failed_generations_are_error_verdicts(tmp_path):
    problems = make_problems(3)
    generator = FailingFor({p.question: p.answer for p in problems}, marker="What is 1 ")
    metrics = run_eval(generator, problems, tmp_path / "run")
    assert metrics["status_counts"]["error"] == 1
    verdict = read_run(tmp_path / "run").verdicts[1]
    assert verdict.status == "error" and verdict.reason.startswith("generation failed: prompt of")


def test_a_batch_failing_all_alike_stops_the_run_before_caching(tmp_path):
    problems = make_problems(3)
    generator = FailingFor({}, marker="What", message="model tiny has no chat template: pass plain-text prompts")
    with pytest.raises(ReasonloopError, match="every prompt of a batch failed, nothing was cached: model tiny has no chat"):
        run_eval(generator, problems, tmp_path / "run")
    assert not list((tmp_path / "run" / "cache").glob("shard-*"))


def test_perturbation_variant_reports_sets_and_drop(tmp_path):
    suite = load_suite("builtin-heldout:rename")
    suite = suite.model_copy(update={"source": suite.source.model_copy(update={"per_template": 3, "max_steps": 2})})
    from reasonloop.evaluate import suite_problems

    problems = suite_problems(suite)
    generator = ScriptedGenerator({p.question: p.answer for p in problems})
    metrics = evaluate_suite(generator, suite, tmp_path / "run", prompt_format=FORMAT, progress=False)
    robustness = metrics["robustness"]
    assert len(robustness["sets"]) == 3 and robustness["min"] <= robustness["mean"] <= robustness["max"]
    rename = robustness["perturbations"]["rename"]
    assert rename["paired"] and rename["n"] == sum(p.meta.get("perturbation") == "rename" for p in problems)
    assert rename["drop"] == pytest.approx(rename["original"] - rename["accuracy"])
    assert set(metrics["by_steps"]) <= {"1", "2"}
