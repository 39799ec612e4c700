"""Strategies that draw independent samples and rank them with a reward model, `best_of_n` and
`weighted_vote`, or with the calculator step check, `checked_vote`.

    reasonloop eval --strategy best_of_n:reward_model=runs/prm,aggregate=min --n 16 ...
    reasonloop eval --strategy weighted_vote:reward_model=runs/orm --n 16 ...
    reasonloop eval --strategy checked_vote --n 16 ...

Each candidate's score is stored on it (`Attempt.reward`) and the choice reads only those
scores and the candidates' own answers — never the reference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from reasonloop.records import Problem, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.reward import AGGREGATES, best_rewarded, load_reward_model, reward_candidates
from reasonloop.search.simple import Majority, Sampled, vote_key
from reasonloop.verify.steps import check_steps


@dataclass(frozen=True)
class RewardOptions:
    """reward_model: a directory trained by `reasonloop train prm` (a PRM or an ORM);
    aggregate: how a PRM's step scores make one score — min, last, product or mean (an ORM uses last)."""

    reward_model: str = ""
    aggregate: str = "min"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise StrategyError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")


class Reranked(Sampled):
    Options = RewardOptions

    def __init__(self, options: RewardOptions | None = None) -> None:
        self.options = options or RewardOptions()

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        if not self.options.reward_model:
            raise StrategyError(f"strategy {self.name} needs a reward model: --strategy {self.name}:reward_model=DIR")
        return super().prepare(settings)

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        results = super().run(problems, sampler, settings)
        model = load_reward_model(self.options.reward_model, sampler.generator())
        for result in results:
            result.reward_calls = reward_candidates(model, result.candidates, self.options.aggregate)
        return results


@register_strategy("best_of_n")
class BestOfN(Reranked):
    """n samples; the one the reward model scores highest wins (ORM, or PRM steps aggregated by min/last/product)."""

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        return best_rewarded(rewards)


@register_strategy("weighted_vote")
class WeightedVote(Reranked):
    """n samples; each answer's votes are weighted by the reward model's scores, the heaviest answer wins."""

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        weight: dict[str, float] = defaultdict(float)
        best: dict[str, int] = {}
        for index, (verdict, reward) in enumerate(zip(verdicts, rewards or [])):
            key = vote_key(verdict)
            if key is None or reward is None:
                continue
            weight[key] += reward
            if key not in best or reward > (rewards[best[key]] or 0.0):
                best[key] = index
        if not weight:
            return None
        top = max(weight, key=lambda key: (weight[key], -best[key]))
        return best[top]


@register_strategy("checked_vote")
class CheckedVote(Majority):
    """n samples; majority vote over the samples whose calculator steps pass the step check
    (`verify.steps`: every operand from the question or an earlier result, results restated as
    computed, the final answer the last result), over all samples where no answered one passes.
    A candidate's reward is 1.0 when it passes, 0.0 when not; no model is called."""

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        results = super().run(problems, sampler, settings)
        for problem, result in zip(problems, results):
            for attempt in result.candidates:
                if not attempt.error:
                    attempt.reward = float(check_steps(problem.question, attempt.completion).consistent)
        return results

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        passed = [i for i, reward in enumerate(rewards or []) if reward == 1.0 and vote_key(verdicts[i]) is not None]
        pool = passed or list(range(len(verdicts)))
        chosen = super().select([verdicts[i] for i in pool])
        return None if chosen is None else pool[chosen]
