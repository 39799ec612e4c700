"""The one solve path: seeding rule, error verdicts, strategy refusals, the registry."""

import json
from dataclasses import dataclass, field

import pytest

from reasonloop.models.base import Completion, SamplingParams
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.records import Problem, Verdict
from reasonloop.search import SolveSettings, StrategyError, get_strategy, strategy_names
from reasonloop.search.base import within_budget
from reasonloop.solve import directory_caches, problem_seed, solve

PROBLEMS = [Problem(question=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(1, 6)]


@dataclass
class ScriptedGenerator:
    """Answers `#### <answer>`: right for even problem numbers, wrong (differently per sample) for odd."""

    name: str = "scripted"
    calls: list = field(default_factory=list)
    fail: bool = False
    supports_logprobs: bool = False

    def fingerprint(self) -> str:
        return "scripted-1"

    def generate_requests(self, requests):
        self.calls.append([(prompt, params.seed, params.n) for prompt, params in requests])
        return [[self.reply(prompt, params, j) for j in range(params.n)] for prompt, params in requests]

    def generate(self, prompts, params):
        return self.generate_requests([(p, params) for p in prompts])

    def reply(self, prompt: str, params: SamplingParams, j: int) -> Completion:
        if self.fail and "3 + 3" in prompt:
            return Completion("", 0, "error", error="server said no")
        number = int(prompt.split("What is ")[1].split(" +")[0])
        answer = 2 * number if number % 2 == 0 else 2 * number + 1 + j
        return Completion(f"so #### {answer}", 3)


def test_the_seed_of_a_problem_depends_on_the_run_seed_and_its_id_never_on_its_batch():
    generator = ScriptedGenerator()
    settings = SolveSettings(strategy="sample", n=2, temperature=0.8, seed=11, batch_size=2)
    solve(PROBLEMS, generator, settings, prompt_format=PLAIN_FORMAT)
    seeds = {prompt: seed for call in generator.calls for prompt, seed, _ in call}
    alone = ScriptedGenerator()
    solve(PROBLEMS[3:4], alone, settings, prompt_format=PLAIN_FORMAT)  # another batch, another position
    assert alone.calls[0][0][1] == seeds[PLAIN_FORMAT.render_prompt(PROBLEMS[3].question)]
    assert sorted(seeds.values()) == sorted(problem_seed(11, p.id) for p in PROBLEMS)
    assert len(set(seeds.values())) == len(PROBLEMS)
    assert problem_seed(12, PROBLEMS[0].id) != problem_seed(11, PROBLEMS[0].id)


def test_a_failed_generation_is_an_error_verdict_and_the_rest_are_graded():
    solved = solve(PROBLEMS, ScriptedGenerator(fail=True), SolveSettings(), prompt_format=PLAIN_FORMAT)
    statuses = [vs[0].status for vs in solved.verdicts]
    assert statuses == ["incorrect", "correct", "error", "correct", "incorrect"]
    assert "server said no" in solved.verdicts[2][0].reason
    assert solved.correct() == [False, True, False, True, False]


def test_majority_chooses_the_most_frequent_answer_without_the_reference():
    def v(status, extracted):
        return Verdict(status=status, extracted=extracted)

    majority = get_strategy("majority")
    assert majority.select([v("incorrect", "7"), v("correct", "5"), v("incorrect", "7.0")]) == 0
    assert majority.score([v("incorrect", "7"), v("correct", "5"), v("incorrect", "7.0")]) == 0.0
    assert majority.select([v("no_answer", None), v("correct", "5"), v("error", None)]) == 1
    assert majority.select([v("correct", "5"), v("incorrect", "7")]) == 0  # a tie: the answer seen first
    assert majority.select([v("no_answer", None)]) is None


def test_the_strategies_come_from_the_registry_and_unknown_names_list_them():
    assert {"greedy", "sample", "majority"} <= set(strategy_names())
    with pytest.raises(StrategyError, match="registered: .*greedy.*majority"):
        get_strategy("beam-of-light")


@pytest.mark.parametrize("settings, message", [
    (dict(strategy="nope"), "unknown strategy 'nope'"),
    (dict(strategy="sample", n=0), "k .* must be >= 1"),
    (dict(strategy="sample", n=2, budget=0), "budget must be > 0"),
    (dict(strategy="greedy", n=3), "greedy draws one sample"),
])
def test_bad_settings_fail_before_anything_is_generated_or_written(tmp_path, settings, message):
    generator = ScriptedGenerator()
    with pytest.raises(StrategyError, match=message):
        solve(PROBLEMS, generator, SolveSettings(**settings), prompt_format=PLAIN_FORMAT,
              caches=directory_caches(tmp_path / "cache"))
    assert generator.calls == [] and not (tmp_path / "cache").exists()


def test_a_strategy_that_needs_logprobs_is_refused_on_a_backend_without_them(monkeypatch):
    from reasonloop.search import base

    class NeedsLogprobs(base.SampledStrategy):
        needs_logprobs = True

    monkeypatch.setitem(base.STRATEGIES, "needs-logprobs", base.register_strategy("needs-logprobs")(NeedsLogprobs))
    generator = ScriptedGenerator()
    with pytest.raises(StrategyError, match="needs token log-probabilities"):
        solve(PROBLEMS, generator, SolveSettings(strategy="needs-logprobs"), prompt_format=PLAIN_FORMAT)
    assert generator.calls == []


def test_the_budget_keeps_the_leading_samples_that_fit_and_counts_every_token():
    generator = ScriptedGenerator()
    solved = solve(PROBLEMS[:1], generator, SolveSettings(strategy="sample", n=4, temperature=1.0, budget=7),
                   prompt_format=PLAIN_FORMAT)
    assert len(solved.results[0].candidates) == 2  # 3 + 3 tokens fit in 7, the third would not
    assert solved.results[0].tokens == 12 and solved.results[0].calls == 4
    assert within_budget(solved.results[0].candidates, None) == solved.results[0].candidates


def test_results_are_cached_per_problem_and_reused(tmp_path):
    settings = SolveSettings(strategy="sample", n=2, temperature=0.8, batch_size=2)
    first = ScriptedGenerator()
    one = solve(PROBLEMS, first, settings, prompt_format=PLAIN_FORMAT, caches=directory_caches(tmp_path))
    again = ScriptedGenerator()
    two = solve(PROBLEMS, again, settings, prompt_format=PLAIN_FORMAT, caches=directory_caches(tmp_path))
    assert again.calls == [] and len(first.calls) == 3  # 5 problems in fixed chunks of 2
    assert [a.model_dump() for a in one.attempts] == [a.model_dump() for a in two.attempts]
    assert json.dumps([v.model_dump() for v in one.all_verdicts]) == json.dumps([v.model_dump() for v in two.all_verdicts])


@pytest.mark.slow
def test_the_tiny_model_samples_the_same_bytes_whatever_the_order_of_the_problems(tmp_path, shared_data):
    """Real model, sampling on: one batch holding the same problems in another order draws the same text."""
    from reasonloop.models import load_generator
    from reasonloop.models.tiny import create_tiny_model

    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:40]]
    model = create_tiny_model(tmp_path / "tiny", [r["question"] + "\n" + r["answer"] for r in rows], seed=0)
    problems = [Problem(question=r["question"], answer="1") for r in rows[:6]]
    settings = SolveSettings(strategy="sample", n=2, temperature=1.0, max_new_tokens=24, seed=3, batch_size=6)
    generator = load_generator(model, batch_size=12)
    forward = solve(problems, generator, settings, prompt_format=PLAIN_FORMAT)
    backward = solve(problems[::-1], generator, settings, prompt_format=PLAIN_FORMAT)
    texts = {a.problem_id + str(a.sample_index): a.completion for a in forward.attempts}
    assert texts == {a.problem_id + str(a.sample_index): a.completion for a in backward.attempts}
    assert len(set(texts.values())) > 6  # sampling really on: the samples differ
