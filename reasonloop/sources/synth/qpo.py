"""Question Preference Optimization (ScaleQuest's QPO), as built here.

The question writer samples questions; each is scored by the solver: *solvable* when it is a
well-formed question (the format filter) whose k sampled solutions agree (the agreement
rule), with *pass rate* the agreeing share. A preference pair prefers a solvable question over
an unsolvable one, or a harder solvable one (lower pass rate, still > 0) over an easier one.
The writer is trained on the pairs with TRL's DPOTrainer, set up as `reasonloop.train.dpo`
sets it up (same settings, config, reference model and `common.fit`).

Success is measured on *distinct* questions (exact duplicates after normalisation counted
once), so a writer that collapses onto a few easy questions cannot count them many times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem
from reasonloop.sources.synth.agreement import AgreementSettings, agree, sample_answers
from reasonloop.sources.synth.filters import format_problem
from reasonloop.sources.synth.qft import QFT_PROMPT

if TYPE_CHECKING:
    from reasonloop.train.dpo import DPOSettings


@dataclass(frozen=True)
class Scored:
    question: str
    well_formed: bool
    answer: str | None  # the agreed answer (None: no agreement)
    pass_rate: float  # share of the k samples giving the majority answer

    @property
    def solvable(self) -> bool:
        return self.well_formed and self.answer is not None


def distinct(problems: Sequence[Problem]) -> list[Problem]:
    """The first of each group of questions equal after normalisation."""
    from reasonloop.text import normalize_question

    seen, kept = set(), []
    for problem in problems:
        key = normalize_question(problem.question)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def score_questions(problems: Sequence[Problem], solver: str | Path, settings: AgreementSettings) -> list[Scored]:
    """Format check and agreement for each question (only well-formed ones are solved)."""
    formed = [format_problem(p.question) is None for p in problems]
    to_solve = [p.model_copy(update={"answer": ""}) for p, ok in zip(problems, formed) if ok]
    answers = iter(sample_answers(to_solve, solver, settings) if to_solve else [])
    scored = []
    for problem, ok in zip(problems, formed):
        found = agree(next(answers)) if ok else None
        passed = found is not None and found.passes(settings.threshold)
        scored.append(Scored(problem.question, ok, found.answer if passed else None, found.share if found else 0.0))
    return scored


def preference_pairs(scored: Sequence[Scored], *, max_pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    """(chosen, rejected) question pairs: solvable over unsolvable, then harder solvable over easier."""
    rng = random.Random(seed)
    solvable = [s for s in scored if s.solvable]
    unsolvable = [s for s in scored if not s.solvable]
    pairs: list[tuple[str, str]] = []
    for chosen in solvable:
        if unsolvable:
            pairs.append((chosen.question, rng.choice(unsolvable).question))
        easier = [s for s in solvable if s.pass_rate > chosen.pass_rate]
        if easier:
            pairs.append((chosen.question, rng.choice(easier).question))
    rng.shuffle(pairs)
    return pairs[:max_pairs]


def train_qpo(writer: str | Path, pairs: Sequence[tuple[str, str]], out_dir: str | Path,
              settings: "DPOSettings | None" = None) -> Path:
    """DPO on question pairs against a frozen copy of the writer (TRL's DPOTrainer)."""
    from trl import DPOConfig, DPOTrainer

    from reasonloop.train import common
    from reasonloop.train.dpo import DPOSettings

    settings = settings or DPOSettings(learning_rate=5e-5, epochs=1, batch_size=16)
    if not pairs:
        raise ReasonloopError("qpo: no preference pairs (needs at least one solvable question beside an unsolvable "
                              "or easier one) — sample more questions or use a stronger solver")
    out_dir = Path(out_dir)
    loaded = common.load_for_training(writer)
    lora = common.use_lora(settings, loaded.model)
    reference = None if lora else common.load_for_training(writer).model.eval()
    fmt = loaded.prompt_format
    rows = [{"prompt": fmt.message(QFT_PROMPT), "chosen": common.completion_value(fmt.render_target(chosen, ""), fmt),
             "rejected": common.completion_value(fmt.render_target(rejected, ""), fmt)} for chosen, rejected in pairs]
    config = DPOConfig(**settings.trainer_args(out_dir), per_device_train_batch_size=settings.batch_size,
                       beta=settings.beta, loss_type=[settings.loss_type], max_length=settings.max_length)
    return common.fit(DPOTrainer, "synth-qpo", loaded, settings, out_dir, rows, lora=lora,
                      guard=common.divergence_guard(), manifest_extra={"pairs": len(pairs)}, args=config,
                      ref_model=reference)


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion z-test (pooled), two-sided."""

    before: tuple[int, int]
    after: tuple[int, int]
    z: float
    p: float

    def to_dict(self) -> dict:
        (k1, n1), (k2, n2) = self.before, self.after
        return {"before": f"{k1}/{n1}", "after": f"{k2}/{n2}", "share_before": round(k1 / n1, 4) if n1 else None,
                "share_after": round(k2 / n2, 4) if n2 else None, "z": round(self.z, 3), "p": self.p}


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> ProportionTest:
    if min(n1, n2) < 1 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ReasonloopError(f"two-proportion test: need 0 <= k <= n and n >= 1, got {k1}/{n1}, {k2}/{n2}")
    pooled = (k1 + k2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = 0.0 if spread == 0 else (k2 / n2 - k1 / n1) / spread
    return ProportionTest((k1, n1), (k2, n2), z, math.erfc(abs(z) / math.sqrt(2)))
