"""`reasonloop synth qft|generate|qpo|backtranslate`: question synthesis (docs/synthesis.md).

Registered by `reasonloop.sources.commands.register`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

synth_app = typer.Typer(help="Synthesize questions: QFT, QPO, generate + filter, back-translation.",
                        no_args_is_help=True)

PROBLEMS_HELP = "Problems: 'builtin' (the built-in templates, 1-3 steps), or a Problem JSONL/Parquet file."


def read_problems(spec: str, per_template: int = 10, seed: int = 0) -> list:
    from reasonloop.sources.datasets import load_problems
    from reasonloop.sources.templates.builtin import builtin_problems

    if spec == "builtin":
        return builtin_problems(per_template, seed=seed, max_steps=3)
    return load_problems(spec).records


def echo(payload: dict, as_json: bool) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str) if as_json else
               "\n".join(f"{key}: {value}" for key, value in payload.items()))


@synth_app.command("qft")
def qft(
    model: str = typer.Option(..., "--model", help="Model directory to start from (a solver)."),
    problems: str = typer.Option("builtin", "--problems", help=PROBLEMS_HELP + " Only the questions are used."),
    out: str = typer.Option(..., "--out", help="Output directory of the question writer."),
    steps: int = typer.Option(300, "--steps", min=1, help="SFT optimizer steps."),
    learning_rate: float = typer.Option(3e-3, "--lr", help="SFT learning rate."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Question Fine-Tuning: train a question writer on questions alone (the SFT trainer)."""
    from reasonloop.sources.synth.qft import train_qft
    from reasonloop.train.sft import SFTSettings

    chosen = read_problems(problems)
    writer = train_qft(model, chosen, out, SFTSettings(learning_rate=learning_rate, max_steps=steps, batch_size=24,
                                                       adam_beta2=0.95))
    echo({"writer": str(writer), "questions": len(chosen)}, as_json)


@synth_app.command("generate")
def generate(
    writer: str = typer.Option(..., "--writer", help="Question writer (from `synth qft` or `synth qpo`)."),
    solver: str = typer.Option(..., "--solver", help="Model whose k samples decide solvability by agreement."),
    n: int = typer.Option(200, "--n", min=1, help="Questions to sample."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature of the writer."),
    k: int = typer.Option(8, "--k", min=1, help="Solutions sampled per question for agreement."),
    threshold: float = typer.Option(0.6, "--threshold", help="Majority share of the k samples needed."),
    solver_temperature: float = typer.Option(0.8, "--solver-temperature", help="Sampling temperature of the k "
                                             "solutions (docs/synthesis.md: k 32, 1.4, threshold 21/32 was "
                                             "confirmed at 95% precision)."),
    min_pass: float = typer.Option(0.0, "--min-pass", help="Difficulty band: lowest pass rate kept."),
    max_pass: float = typer.Option(1.0, "--max-pass", help="Difficulty band: highest pass rate kept."),
    known: Optional[str] = typer.Option(None, "--known", help="Problems whose skeletons are not new (training set)."),
    eval_sets: Optional[List[str]] = typer.Option(None, "--eval-set", help="NAME=PATH of an evaluation set to "
                                                  "decontaminate against (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    output: str = typer.Option(..., "-o", "--output", help="Kept problems (.jsonl or .parquet)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Sample questions, run the filters (format, dedup, solvability, difficulty, decontamination), write the kept."""
    from reasonloop.errors import ReasonloopError
    from reasonloop.records import write_records
    from reasonloop.sources.synth.agreement import AgreementSettings
    from reasonloop.sources.synth.chain import ChainSettings, filter_questions
    from reasonloop.sources.synth.qft import generate_questions

    suites = {}
    for item in eval_sets or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ReasonloopError(f"--eval-set takes NAME=PATH, got {item!r}")
        suites[name] = read_problems(path)
    agreement = AgreementSettings(k=k, temperature=solver_temperature, threshold=threshold, seed=seed)
    settings = ChainSettings(agreement=agreement, min_pass=min_pass, max_pass=max_pass)
    drawn = generate_questions(writer, n, temperature=temperature, seed=seed)
    kept, results = filter_questions(drawn.problems, solver, settings, known=read_problems(known) if known else (),
                                     suites=suites)
    write_records(output, kept)
    echo({"sampled": drawn.counts, **{r.name: r.counts for r in results}, "written": len(kept), "output": output},
         as_json)


@synth_app.command("qpo")
def qpo(
    writer: str = typer.Option(..., "--writer", help="Question writer to improve (from `synth qft`)."),
    solver: str = typer.Option(..., "--solver", help="Model that scores solvability and pass rate."),
    out: str = typer.Option(..., "--out", help="Output directory of the improved writer."),
    n: int = typer.Option(300, "--n", min=2, help="Questions sampled to build preference pairs."),
    k: int = typer.Option(8, "--k", min=1, help="Solutions per question for agreement."),
    pairs: int = typer.Option(512, "--pairs", min=1, help="At most this many pairs."),
    steps: int = typer.Option(60, "--steps", min=1, help="DPO optimizer steps."),
    learning_rate: float = typer.Option(5e-5, "--lr", help="DPO learning rate."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Question Preference Optimization: prefer solvable, then harder questions; train with DPO."""
    from reasonloop.sources.synth.agreement import AgreementSettings
    from reasonloop.sources.synth.qft import generate_questions
    from reasonloop.sources.synth.qpo import distinct, preference_pairs, score_questions, train_qpo
    from reasonloop.train.dpo import DPOSettings

    drawn = distinct(generate_questions(writer, n, seed=seed).problems)
    scored = score_questions(drawn, solver, AgreementSettings(k=k, seed=seed))
    chosen = preference_pairs(scored, max_pairs=pairs, seed=seed)
    path = train_qpo(writer, chosen, out, DPOSettings(learning_rate=learning_rate, max_steps=steps, batch_size=16))
    echo({"writer": str(path), "distinct_questions": len(scored), "solvable": sum(s.solvable for s in scored),
          "pairs": len(chosen)}, as_json)


@synth_app.command("backtranslate")
def backtranslate(
    model: str = typer.Option(..., "--model", help="Model the back-translator starts from each round."),
    solver: str = typer.Option(..., "--solver", help="Model that solves the generated questions."),
    train: str = typer.Option(..., "--train", help="Problems with worked solutions: (solution -> question) pairs."),
    solutions: str = typer.Option(..., "--solutions", help="Problems whose worked solutions get new questions "
                                  "(their own questions are used only by the oracle)."),
    out: str = typer.Option(..., "--out", help="Output directory (writers per round, kept.jsonl, rounds.json)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Rounds."),
    steps: int = typer.Option(200, "--steps", min=1, help="SFT steps of the back-translator per round."),
    as_json: bool = typer.Option(False, "--json", help="Print the rounds as JSON."),
) -> None:
    """Back-translation with the Cycle Verifier: keep a written question only when the solver's answer closes the cycle."""
    from reasonloop.atomic import atomic_write_json
    from reasonloop.records import write_records
    from reasonloop.sources.synth.backtranslate import BTSettings
    from reasonloop.sources.synth.backtranslate import backtranslate as run
    from reasonloop.train.sft import SFTSettings

    sft = SFTSettings(learning_rate=3e-3, batch_size=24, max_steps=steps, adam_beta2=0.95)
    result = run(model, solver, read_problems(train), read_problems(solutions, seed=5), out,
                 BTSettings(rounds=rounds, sft=sft))
    write_records(Path(out) / "kept.jsonl", result.kept)
    rows = [r.to_dict() for r in result.rounds]
    atomic_write_json(Path(out) / "rounds.json", rows)
    echo({"rounds": rows, "kept": len(result.kept)}, as_json)
