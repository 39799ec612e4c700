"""Rejection-sampling self-training: STaR (Zelikman et al. 2022) and ReST-EM (Singh et al. 2023).

Each round samples `k` attempts per training problem from the latest model, keeps the
ones the verifier accepts (deduplicated, at most `max_per_problem` per problem),
optionally rationalizes (STaR: retries unsolved problems with the answer given as a hint
and keeps verified attempts, trained on *without* the hint), then fine-tunes with SFT —
from the starting model each round (`restart_from_base`, ReST-EM) or continuing.

    from reasonloop.train.rft import RFTSettings, train_rft
    result = train_rft("runs/sft", problems, "runs/rft", RFTSettings(rounds=2, k=4), heldout=heldout)
    print(result.table())

`OUT/round-N/` holds each round's model (a standard HF dir), its sampled `attempts.jsonl`
and `verdicts.jsonl`, and `round.json`; a killed run resumes at the first unfinished round.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from reasonloop.atomic import atomic_write_json, atomic_write_text
from reasonloop.errors import ReasonloopError
from reasonloop.records import Attempt, Problem, Verdict, load
from reasonloop.solve import directory_caches
from reasonloop.train import common
from reasonloop.train.registry import TrainResult, register_trainer
from reasonloop.train.sampling import Graded, sample_and_grade, write_graded
from reasonloop.train.sft import SFTSettings, train_sft
from reasonloop.verify import steps

ROUND_FILE = "round.json"


@dataclass
class RFTSettings:
    """Self-training settings.

    Attributes:
        rounds: sample → filter → fine-tune rounds.
        k: attempts sampled per problem per round.
        temperature: sampling temperature of those attempts.
        max_per_problem: distinct verified attempts kept per problem.
        check_steps: keep only attempts whose calculator steps are also consistent (`reasonloop.verify.steps`:
            every number grounded in the question or an earlier result) — a right answer by a wrong route is dropped.
        rationalize: STaR rationalization of problems no attempt solved.
        restart_from_base: fine-tune the starting model each round (ReST-EM) instead of the last round's.
        max_new_tokens: generation limit per attempt.
        batch_size: prompts x samples generated together.
        seed: sampling seed of round 1 (round r uses seed + r - 1).
        server: sample (and evaluate held-out) through a `reasonloop serve` at this URL (…/v1) instead of
            in this process; before each round's sampling the driver has it load the round's model
            (`POST /v1/reload`), so round r samples round r - 1's weights.
        sft: the fine-tuning settings of every round (an `SFTSettings` or a dict of its fields).
    """

    rounds: int = 2
    k: int = 4
    temperature: float = 0.8
    max_per_problem: int = 4
    check_steps: bool = False
    rationalize: bool = False
    restart_from_base: bool = False
    max_new_tokens: int = 192
    batch_size: int = 64
    seed: int = 0
    server: str | None = None
    sft: SFTSettings = field(default_factory=SFTSettings)

    def __post_init__(self) -> None:
        if isinstance(self.sft, dict):
            self.sft = SFTSettings(**self.sft)
        for name in ("rounds", "k", "max_per_problem", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RFTSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"RFTSettings.temperature must be > 0 (sampling), got {self.temperature}")


@dataclass
class RoundStats:
    round: int
    problems: int
    solved: int  # problems with at least one verified attempt (before rationalization)
    rationalized: int  # further problems solved with the answer as a hint
    kept: int  # distinct verified samples trained on
    optimizer_steps: int
    heldout_accuracy: float | None
    model_dir: str

    @property
    def solved_fraction(self) -> float:
        return self.solved / self.problems if self.problems else 0.0


@dataclass
class RFTResult(TrainResult):
    rounds: list[RoundStats] = field(default_factory=list)

    def meta(self) -> dict:
        return {"rounds": json.loads(json.dumps([asdict(r) for r in self.rounds], default=str))}

    def table(self) -> str:
        lines = ["round  solved       kept  steps  held-out"]
        for r in self.rounds:
            held = f"{r.heldout_accuracy:.1%}" if r.heldout_accuracy is not None else "-"
            lines.append(f"{r.round:>5}  {r.solved_fraction:>6.1%} {'+' + str(r.rationalized) if r.rationalized else '':>4}"
                         f" {r.kept:>6}  {r.optimizer_steps:>5}  {held:>8}")
        return "\n".join(lines)


def keep_verified(graded: Sequence[Graded], max_per_problem: int, check_steps: bool = False) -> dict[str, list[str]]:
    """problem id -> distinct verified worked solutions (whitespace-normalised), at most `max_per_problem`;
    with `check_steps`, only those whose calculator steps are consistent too."""
    kept: dict[str, list[str]] = {}
    for item in graded:
        reasoning = common.reasoning_of(item.attempt.completion)
        chosen = kept.setdefault(item.problem.id, [])
        if reasoning and len(chosen) < max_per_problem and trusted(item, check_steps) \
                and " ".join(reasoning.split()) not in {" ".join(s.split()) for s in chosen}:
            chosen.append(reasoning)
    return {pid: solutions for pid, solutions in kept.items() if solutions}


def trusted(item: Graded, check_steps: bool) -> bool:
    """Verified correct, and with `check_steps` also grounded step by step."""
    return item.verdict.correct and (not check_steps or steps.check_steps(item.problem.question,
                                                                         item.attempt.completion).consistent)


def as_training_problems(problems: Sequence[Problem], kept: dict[str, list[str]]) -> list[Problem]:
    return [p.model_copy(update={"solution": solution, "id": f"{p.id}-s{i}"})
            for p in problems for i, solution in enumerate(kept.get(p.id, []))]


def sample_round(number: int, sampler: Path | str, problems: Sequence[Problem], out: Path,
                 settings: RFTSettings) -> tuple[list[Graded], list[Graded]]:
    """(plain attempts, rationalization attempts) of a round, graded; read back if a killed run saved them."""
    plain_file, hinted_file = out / "attempts.jsonl", out / "rationalized.jsonl"
    if (out / "verdicts.jsonl").is_file():
        return reload_graded(problems, plain_file, out / "verdicts.jsonl"), \
            reload_graded(problems, hinted_file, out / "rationalized_verdicts.jsonl")
    seed = settings.seed + number - 1
    serve_checkpoint(settings.server, sampler)
    options = dict(k=settings.k, temperature=settings.temperature, seed=seed, server=settings.server,
                   max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                   caches=directory_caches(out / "cache"))
    plain = sample_and_grade(sampler, problems, **options)
    hinted: list[Graded] = []
    if settings.rationalize:
        solved = keep_verified(plain, settings.max_per_problem, settings.check_steps)
        hinted = sample_and_grade(sampler, [p for p in problems if p.id not in solved], hint=True, **options)
    if hinted:
        write_graded(hinted, hinted_file, out / "rationalized_verdicts.jsonl")
    write_graded(plain, plain_file, out / "verdicts.jsonl")  # written last: marks the round's samples complete
    return plain, hinted


def serve_checkpoint(server: str | None, model: Path | str) -> None:
    """Have the sampling server (if any) hold `model`."""
    if server:
        from reasonloop.models.server import reload_server

        reload_server(server, model)


def reload_graded(problems: Sequence[Problem], attempts_file: Path, verdicts_file: Path) -> list[Graded]:
    if not verdicts_file.is_file():
        return []
    by_id = {p.id: p for p in problems}
    attempts, verdicts = load(attempts_file, Attempt), load(verdicts_file, Verdict)
    return [Graded(by_id[a.problem_id], a, v) for a, v in zip(attempts, verdicts)]


def run_round(number: int, sampler: Path | str, start: Path | str, problems: Sequence[Problem], out: Path,
              settings: RFTSettings, heldout: Sequence[Problem] | None,
              replay: Sequence[Problem] = ()) -> RoundStats:
    plain, hinted = sample_round(number, sampler, problems, out, settings)
    kept = keep_verified(plain, settings.max_per_problem, settings.check_steps)
    solved = len(kept)
    kept |= keep_verified(hinted, settings.max_per_problem, settings.check_steps)
    if not kept:
        raise ReasonloopError(
            f"round {number}: 0 of {len(problems)} problems solved at k={settings.k} — raise k or temperature, "
            "or start from an SFT model")
    train_sft(start, as_training_problems(problems, kept) + list(replay), out, settings.sft)
    manifest = json.loads((out / common.MANIFEST).read_text())
    accuracy = None
    if heldout:
        from reasonloop.train.heldout import evaluate_accuracy

        serve_checkpoint(settings.server, out)
        accuracy = evaluate_accuracy(out, heldout, batch_size=settings.batch_size, server=settings.server,
                                     max_new_tokens=settings.max_new_tokens).accuracy
    stats = RoundStats(number, len(problems), solved, len(kept) - solved, sum(map(len, kept.values())),
                       manifest["optimizer_steps"], accuracy, str(out))
    atomic_write_json(out / ROUND_FILE, asdict(stats))
    return stats


@register_trainer("rft", settings=RFTSettings,
                  help="Self-training rounds (STaR / ReST-EM): sample, keep verified, fine-tune.",
                  inputs={"heldout": "Problems for per-round held-out accuracy.",
                          "replay": "Problems with worked solutions (e.g. the SFT data) added to every round's "
                                    "fine-tuning set."})
def train_rft(model: str | Path, problems: Sequence[Problem], out_dir: str | Path,
              settings: RFTSettings | None = None, heldout: Sequence[Problem] | None = None,
              replay: Sequence[Problem] | None = None) -> RFTResult:
    """`settings.rounds` rounds of sample → verify → fine-tune; `result.model_dir` is the last round's model.

    `replay`: problems with worked solutions (e.g. the SFT data) added to every round's fine-tuning
    set, as in Yuan et al. 2023's RFT, so the round does not drift towards the problems it already solves.
    """
    settings = settings or RFTSettings()
    common.check_problems(problems, "rft")
    if replay:
        common.check_problems(replay, "rft replay", need_solutions=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rounds: list[RoundStats] = []
    latest: Path | str = model
    for number in range(1, settings.rounds + 1):
        round_dir = out_dir / f"round-{number}"
        if (round_dir / ROUND_FILE).is_file():  # finished before a kill: reuse
            stats = RoundStats(**json.loads((round_dir / ROUND_FILE).read_text()))
        else:
            start = model if settings.restart_from_base else latest
            stats = run_round(number, latest, start, problems, round_dir, settings, heldout, replay or ())
        rounds.append(stats)
        latest = round_dir
    write_rft_log(out_dir, rounds)
    atomic_write_json(out_dir / common.MANIFEST, rft_manifest(str(model), settings, rounds), default=str)
    return RFTResult(Path(latest), rounds)


def write_rft_log(out_dir: Path, rounds: Sequence[RoundStats]) -> None:
    """One row per round, its step the optimizer steps so far (for the report's curves)."""
    step, rows = 0, []
    for r in rounds:
        step += r.optimizer_steps
        row = {"step": step, "round": r.round, "solved_fraction": r.solved_fraction, "kept": r.kept}
        if r.heldout_accuracy is not None:
            row["accuracy"] = r.heldout_accuracy
        rows.append(json.dumps(row))
    atomic_write_text(out_dir / common.TRAIN_LOG, "".join(row + "\n" for row in rows))


def rft_manifest(model: str, settings: RFTSettings, rounds: Sequence[RoundStats]) -> dict:
    from reasonloop.rundir import make_manifest
    from reasonloop.verify import verifier_id

    return make_manifest(kind="train-rft", model=model, verifier_version=verifier_id(), seed=settings.seed,
                         config=asdict(settings), rounds=[asdict(r) | {"solved_fraction": r.solved_fraction}
                                                          for r in rounds],
                         final_model=rounds[-1].model_dir, complete=True)
