"""Reward-model and step-level strategies on a scripted generator and a scripted reward model:
what they choose, what they spend, the trees they record, and bad input."""

from dataclasses import dataclass, field, replace

import pytest

from reasonloop.models.base import Completion, apply_stop
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.records import Problem
from reasonloop.search import SolveSettings, StrategyError, get_strategy
from reasonloop.search import reward as reward_module
from reasonloop.search.reward import RewardModelError
from reasonloop.solve import solve

PROBLEMS = [Problem(question=f"What is {i} + {i}?", answer=str(2 * i)) for i in (1, 2, 3)]


@dataclass
class StepScript:
    """Writes ' A + A = S.\\n' then '#### S'; sample j's first line is right when j is odd (wrong: S + 1)."""

    name: str = "steps"
    empty: bool = False
    tokenizer: object = None
    seen: list = field(default_factory=list)

    def fingerprint(self) -> str:
        return "steps-1"

    def generate_requests(self, requests):
        return [[self.reply(prompt, params, j) for j in range(params.n)] for prompt, params in requests]

    def generate(self, prompts, params):
        return self.generate_requests([(p, params) for p in prompts])

    def reply(self, prompt, params, j):
        self.seen.append(prompt)
        if self.empty:
            return Completion("", 0)
        number = int(prompt.split("What is ")[1].split(" +")[0])
        written = prompt.split("Answer:", 1)[1]
        if "=" not in written:
            total = 2 * number + (0 if (j + params.seed) % 2 else 1)
            rest = f" {number} + {number} = {total}.\n#### {total}"
        else:
            rest = "#### " + written.split("= ")[1].split(".")[0]
        text, hit = apply_stop(rest, params.stop)
        return Completion(text, len(text.split()), stop_reason=hit)


class ScriptedReward:
    """Scores a step 0.9 when its sum is right, 0.2 when it is wrong (a final-answer step 0.5)."""

    kind, path, calls = "prm", "scripted", 0

    def check_tokenizer(self, generator):
        if getattr(generator, "tokenizer", None) == "other":
            raise RewardModelError("reward model scripted: its tokenizer is not the generator's")

    def step_scores(self, prompts, solutions):
        return [[self.one(step) for step in steps] for steps in solutions]

    def one(self, step):
        if "=" not in step:
            return 0.5
        left, right = step.split("=")
        a = int(left.split("+")[0])
        return 0.9 if int(right.strip().rstrip(".\n")) == 2 * a else 0.2

    def solution_scores(self, prompts, solutions, how):
        return [reward_module.aggregate(s, how) for s in self.step_scores(prompts, solutions)]


@pytest.fixture(autouse=True)
def scripted_reward(monkeypatch):
    monkeypatch.setitem(reward_module.LOADED, "scripted", ScriptedReward())


def run(strategy, generator=None, **settings):
    settings = SolveSettings(strategy=strategy, **({"n": 4, "temperature": 0.8} | settings))
    return solve(PROBLEMS, generator or StepScript(), settings, prompt_format=PLAIN_FORMAT)


def test_majority_of_the_script_is_split_and_best_of_n_picks_the_right_sum():
    solved = run("best_of_n:reward_model=scripted,aggregate=min")
    assert solved.accuracy() == 1.0
    assert [[a.reward for a in r.candidates] for r in solved.results][0] == [0.5, 0.2, 0.5, 0.2]
    assert solved.results[0].candidates[0].steps == [" 1 + 1 = 2.\n", "#### 2"]
    assert [r.reward_calls for r in solved.results] == [4, 4, 4]
    # by the last step alone every candidate scores 0.5: the tie goes to the first, right for 2 of 3 problems
    assert run("best_of_n:reward_model=scripted,aggregate=last").accuracy() == pytest.approx(2 / 3)


def test_weighted_vote_sums_rewards_per_answer():
    weighted = get_strategy("weighted_vote:reward_model=scripted")
    from reasonloop.records import Verdict

    verdicts = [Verdict(status="incorrect", extracted="5"), Verdict(status="incorrect", extracted="5"),
                Verdict(status="correct", extracted="4")]
    assert weighted.select(verdicts, [0.3, 0.3, 0.5]) == 0  # 0.6 for 5 beats 0.5 for 4
    assert weighted.select(verdicts, [0.2, 0.2, 0.5]) == 2
    assert weighted.select(verdicts, [None, None, None]) is None
    assert run("weighted_vote:reward_model=scripted").accuracy() == 1.0


def test_beam_keeps_the_best_step_and_records_its_tree():
    solved = run("beam:reward_model=scripted,width=1,expand=2", budget=200)
    assert solved.accuracy() == 1.0
    result = solved.results[0]
    assert result.calls == 4 and result.reward_calls == 4  # 2 first steps, then 2 answers from the kept one
    assert result.tree["children"][0]["step"] == " 1 + 1 = 3.\n" and result.tree["children"][0]["value"] == 0.2
    assert [c.completion for c in result.candidates] == [" 1 + 1 = 2.\n#### 2", " 1 + 1 = 2.\n#### 2"]


@pytest.mark.parametrize("value", ["prm", "rollout"])
def test_mcts_finds_the_right_sum_and_counts_its_calls(value):
    solved = run(f"mcts:reward_model=scripted,value={value},iterations=6,expand=2", budget=400)
    assert solved.accuracy() == 1.0
    assert all(r.tree["visits"] >= 3 and r.calls >= 4 for r in solved.results)
    assert solved.tokens() == sum(r.tokens for r in solved.results) > 0


def test_refine_keeps_one_thought_and_chooses_the_last_round():
    solved = run("refine:rounds=1", n=1)
    result = solved.results[0]
    assert len(result.candidates) == 2 and result.calls == 3  # solution, critique, revision
    assert "\nCritique:" in result.tree["thought"] and "\nRevised solution:" in result.tree["thought"]
    assert solved.chosen == [1, 1, 1]


def test_a_budget_stops_the_search_and_an_empty_generator_is_an_error_verdict_not_a_crash():
    tight = run("beam:reward_model=scripted,width=2,expand=2", budget=1)
    assert all(r.calls == 2 for r in tight.results)  # the root's two children, then the budget is spent
    empty = run("beam:reward_model=scripted", generator=StepScript(empty=True))
    assert [vs[0].status for vs in empty.verdicts] == ["error"] * 3
    assert "failed or was empty" in empty.verdicts[0][0].reason
    reranked = run("best_of_n:reward_model=scripted", generator=StepScript(empty=True))
    assert {v.reason for vs in reranked.verdicts for v in vs} == {"generation failed: the step splitter found no steps in this solution"}
    assert reranked.chosen == [None] * 3
    refined = run("refine:rounds=1", generator=StepScript(empty=True), n=1)
    assert [vs[0].status for vs in refined.verdicts] == ["error"] * 3


def test_bad_input_is_refused_with_the_option_named():
    with pytest.raises(StrategyError, match="needs a reward model"):
        run("best_of_n")
    with pytest.raises(StrategyError, match="needs at least one other generator"):
        run("mma")
    with pytest.raises(StrategyError, match="did you mean 'width'"):
        get_strategy("beam:widht=2")
    with pytest.raises(StrategyError, match="strategy best_of_n: aggregate must be one of"):
        get_strategy("best_of_n:aggregate=max")
    with pytest.raises(RewardModelError, match="tokenizer is not the generator's"):
        run("best_of_n:reward_model=scripted", generator=StepScript(tokenizer="other"))
    with pytest.raises(RewardModelError, match="no reasonloop_reward.json"):
        run("best_of_n:reward_model=/nonexistent-dir")


def test_eval_with_a_reward_strategy_saves_rewards_and_recomputes_its_choice_from_the_files(tmp_path):
    from reasonloop.evaluate import evaluate_suite, load_suite, read_run

    metrics = evaluate_suite(StepScript(), load_suite("gsm8k"), tmp_path / "run", problems=PROBLEMS, prompt_format=PLAIN_FORMAT,
                             strategy="best_of_n:reward_model=scripted", n=4, progress=False)
    assert metrics["strategy"] == "best_of_n:reward_model=scripted" and metrics["accuracy"] == 1.0
    assert metrics["maj_at_k"]["4"] == pytest.approx(2 / 3)  # 2-2 ties go to the first sample, right for 2 of 3
    run = read_run(tmp_path / "run")
    assert sorted({a.reward for a in run.attempts}) == [0.2, 0.5]


@dataclass
class CopySlips:
    """Three samples multiply by a number the question does not hold (17 * 18), the fourth is right;
    with `all_slip` every sample slips."""

    all_slip: bool = False
    tokenizer: object = None

    def fingerprint(self) -> str:
        return f"slips-{self.all_slip}"

    def generate_requests(self, requests):
        right = " 17 * 16 = <<17*16=272>>272 apples.\n#### 272"
        slips = [" 17 * 18 = <<17*18=306>>306 apples.\n#### 306", " 17 * 19 = <<17*19=323>>323 apples.\n#### 323"]
        replies = [slips[0], slips[0], slips[1], slips[1] if self.all_slip else right]
        return [[Completion(replies[j % 4], 9) for j in range(params.n)] for _, params in requests]


def test_checked_vote_votes_among_the_samples_the_step_check_passes():
    problem = [Problem(question="Tom has 17 bags of 16 apples. How many apples does he have?", answer="272")]
    settings = SolveSettings(strategy="checked_vote", n=4, temperature=0.8)
    checked = solve(problem, CopySlips(), settings, prompt_format=PLAIN_FORMAT)
    assert checked.correct() == [True] and [a.reward for a in checked.results[0].candidates] == [0.0, 0.0, 0.0, 1.0]
    assert checked.results[0].reward_calls == 0
    majority = solve(problem, CopySlips(), replace(settings, strategy="majority"), prompt_format=PLAIN_FORMAT)
    assert majority.correct() == [False]  # 306 has two votes
    fallback = solve(problem, CopySlips(all_slip=True), settings, prompt_format=PLAIN_FORMAT)
    assert fallback.results[0].candidates[fallback.chosen[0]].completion.endswith("#### 306")  # none passes: plain majority
