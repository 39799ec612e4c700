"""`refine`: critique and revise for R rounds, the whole trace kept as one "refinement thought".

    reasonloop eval --strategy refine:rounds=2 ...

As in AvR's test-time form, the rounds are one growing text: the first solution, then
`Critique:` and a one-line critique, then `Revised solution:` and a revision, and so on;
each round continues the whole trace so far (`CachedSampler.continue_texts`), so a later
round sees every earlier attempt and critique. Each round's solution is a candidate (graded
on its own text); the last one is chosen — or, with `reward_model=DIR`, the best-scored.
The full thought is in the tree (trees.jsonl). The token budget (default
n x max_new_tokens) ends the rounds early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from reasonloop.records import Attempt, Problem, Verdict
from reasonloop.search.base import Sampler, SolveSettings, StrategyError, StrategyResult, register_strategy
from reasonloop.search.reward import AGGREGATES, best_rewarded, load_reward_model, reward_candidates
from reasonloop.search.stepwise import prompt_of, step_settings, token_limit

CRITIQUE = "\nCritique:"
REVISION = "\nRevised solution:"


@dataclass(frozen=True)
class RefineOptions:
    """rounds: critique-and-revise rounds after the first solution; reward_model (optional): choose the
    best-scored round instead of the last; aggregate: as best_of_n's."""

    rounds: int = 2
    reward_model: str = ""
    aggregate: str = "min"

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise StrategyError(f"rounds must be >= 0, got {self.rounds}")
        if self.aggregate not in AGGREGATES:
            raise StrategyError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")


@register_strategy("refine")
class Refine:
    """Critique and revise for R rounds in one long refinement thought; the last (or best-scored) round wins."""

    Options = RefineOptions
    needs_logprobs = False

    def __init__(self, options: RefineOptions | None = None) -> None:
        self.options = options or RefineOptions()

    def prepare(self, settings: SolveSettings) -> SolveSettings:
        return step_settings(settings)

    def run(self, problems: Sequence[Problem], sampler: Sampler, settings: SolveSettings) -> list[StrategyResult]:
        results = [StrategyResult() for _ in problems]
        thoughts = [""] * len(problems)
        limit = token_limit(settings)
        for round_ in range(self.options.rounds + 1):
            active = [i for i, r in enumerate(results) if r.tokens < limit and not (r.candidates and r.candidates[-1].error)]
            if not active:
                break
            if round_:
                critiques = self.extend(sampler, problems, thoughts, active, settings, results, CRITIQUE, ("\n",), round_)
                for i, critique in zip(active, critiques):
                    thoughts[i] += CRITIQUE + critique.completion.rstrip("\n") + REVISION
            drawn = self.extend(sampler, problems, thoughts, active, settings, results, "", (), round_)
            for i, attempt in zip(active, drawn):
                candidate = attempt.model_copy(update={"prompt": prompt_of(sampler, problems[i]),
                                                       "sample_index": len(results[i].candidates)})
                if not attempt.error and not attempt.completion.strip():
                    candidate.error = "the model wrote an empty solution"
                results[i].candidates.append(candidate)
                thoughts[i] += attempt.completion
        for result, thought in zip(results, thoughts):
            result.tree = {"id": 0, "step": "refinement thought", "thought": thought, "rounds": len(result.candidates)}
        if self.options.reward_model:
            model = load_reward_model(self.options.reward_model, sampler.generator())
            for result in results:
                result.reward_calls = reward_candidates(model, result.candidates, self.options.aggregate)
        return results

    @staticmethod
    def extend(sampler, problems, thoughts, active, settings, results, header, stop, round_) -> list[Attempt]:
        drawn = sampler.continue_texts([(problems[i], thoughts[i] + header) for i in active], 1, settings,
                                       stop=stop, salt=f"refine{round_}{header}")
        for i, (attempt,) in zip(active, drawn):
            results[i].tokens += attempt.tokens
            results[i].calls += 1
        return [attempts[0] for attempts in drawn]

    def select(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> int | None:
        if self.options.reward_model:
            return best_rewarded(rewards)
        usable = [i for i, v in enumerate(verdicts) if v.status != "error"]
        return usable[-1] if usable else None

    def score(self, verdicts: Sequence[Verdict], rewards: Sequence[float | None] | None = None) -> float:
        chosen = self.select(verdicts, rewards)
        return float(chosen is not None and verdicts[chosen].correct)
