"""Measurements of question synthesis (issue #23) on the tiny model and the built-in templates.

    python benchmarks/measure_synth.py --out /tmp/synth solver qft agreement backtranslate qpo

Steps (each writes <out>/<step>.json and reuses models already trained in <out>):
  solver         tiny Llama (3 layers, calculator) + SFT on the training templates' worked solutions
  qft            QFT writer from the solver; share of sampled questions passing the format check;
                 the whole filter chain on them (novel-skeleton share against the training questions)
  agreement      the agreement rule on held-out template problems with known answers, per threshold
  backtranslate  back-translation with the Cycle Verifier over --rounds rounds
  qpo            QPO on the writer's questions; solvable share of distinct questions before/after

Templates: the built-in ones with at most 3 steps; every 4th (by file order) is held back: its
questions are never trained on (its worked solutions are back-translation's input).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# The agreement step's problems: these seeds pooled, less the sets of sessions 9 and 10 (seeds 7, 8,
# 9, 17: looked at already), split by question into a development and a confirmation half.
KNOWN_SEEDS, LOOKED_AT_SEEDS = (21, 22, 23, 24), (7, 8, 9, 17)


def templates():
    from reasonloop.sources.templates.builtin import builtin_templates

    chosen = builtin_templates(max_steps=3)
    return [t for i, t in enumerate(chosen) if i % 4 != 3], [t for i, t in enumerate(chosen) if i % 4 == 3]


def problems(which, per_template, seed):
    from reasonloop.sources.templates import generate_problems

    return generate_problems(which, per_template=per_template, seed=seed)


def save(out: Path, step: str, result: dict) -> None:
    text = json.dumps(result, indent=2, default=str) + "\n"
    (out / f"{step}.json").write_text(text)
    if os.environ.get("SYNTH_RESULTS"):  # a second copy (the device machine's $OUT)
        (Path(os.environ["SYNTH_RESULTS"]) / f"{step}.json").write_text(text)
    print(step, json.dumps(result, default=str)[:3000], flush=True)


def step_solver(out: Path, args) -> dict:
    from reasonloop.models.tiny import TinyConfig, create_tiny_model
    from reasonloop.pipeline.stages.models import training_texts
    from reasonloop.prompts import PLAIN_FORMAT
    from reasonloop.sources.synth.backtranslate import solution_prompt
    from reasonloop.sources.synth.qft import QFT_PROMPT
    from reasonloop.train.sft import SFTSettings, train_sft

    train_t, held_t = templates()
    train = problems(train_t, 25, 0)
    fmt = replace(PLAIN_FORMAT, calculator=True)
    every = problems(train_t + held_t, 5, 0)
    corpus = training_texts(every, fmt) + [QFT_PROMPT] + [f"Solution: {solution_prompt(p)}" for p in every]
    tiny = create_tiny_model(out / "tiny", corpus, TinyConfig(num_layers=3), number_tokens=1000)
    fmt.save(tiny)
    started = time.perf_counter()
    train_sft(tiny, train, out / "solver", SFTSettings(learning_rate=0.005, batch_size=24, max_steps=args.solver_steps,
                                                       adam_beta2=0.95, warmup_ratio=0.05))
    return {"train_templates": len(train_t), "held_templates": len(held_t), "train_problems": len(train),
            "sft_steps": args.solver_steps, "seconds": round(time.perf_counter() - started, 1)}


def step_qft(out: Path, args) -> dict:
    from reasonloop.sources.synth.chain import ChainSettings, filter_questions
    from reasonloop.sources.synth.filters import NothingUsable, format_filter
    from reasonloop.sources.synth.agreement import AgreementSettings
    from reasonloop.sources.synth.qft import generate_questions, train_qft
    from reasonloop.train.sft import SFTSettings

    train_t, held_t = templates()
    train = problems(train_t, 25, 0)
    if not (out / "writer" / "manifest.json").is_file():
        train_qft(out / "solver", train, out / "writer", SFTSettings(learning_rate=0.003, batch_size=24,
                                                                   max_steps=args.qft_steps, adam_beta2=0.95))
    started = time.perf_counter()
    drawn = generate_questions(out / "writer", args.questions, temperature=args.temperature, seed=1,
                               batch_size=args.batch_size)
    formatted = format_filter(drawn.problems)
    result = {"sampled": drawn.counts, "format": formatted.counts,
              "format_pass_share": round(formatted.counts["kept"] / args.questions, 4),
              "generate_seconds": round(time.perf_counter() - started, 1),
              "examples": [p.question for p in drawn.problems[:5]]}
    heldout = problems(train_t + held_t, 3, 11)
    settings = ChainSettings(agreement=AgreementSettings(k=args.k, batch_size=args.batch_size))
    try:
        kept, results = filter_questions(drawn.problems, out / "solver", settings, known=train,
                                         suites={"heldout": heldout})
        result["chain"] = [r.counts for r in results]
        result["kept_examples"] = [(p.question, p.answer) for p in kept[:5]]
    except NothingUsable as stop:
        result["chain_stopped"] = str(stop)
    return result


def known_problems(seeds, per_template, leave_out_seeds=()) -> tuple[list, int]:
    """Template problems of `seeds` (pooled) with none of the solver's training questions, none of
    `leave_out_seeds`' and no repeats; and how many were left out."""
    from reasonloop.evaluate.suites import dedupe
    from reasonloop.text import normalize_question

    train_t, held_t = templates()
    seen = {normalize_question(p.question) for p in problems(train_t, 25, 0)}
    for seed in leave_out_seeds:
        seen |= {normalize_question(p.question) for p in problems(train_t + held_t, per_template, seed)}
    drawn = [p for seed in seeds for p in problems(train_t + held_t, per_template, seed)]
    fresh = dedupe([p for p in drawn if normalize_question(p.question) not in seen])
    return fresh, len(drawn) - len(fresh)


def half_of(problems, half: str) -> list:
    """The development or the confirmation half of `problems`, split by a hash of each question, so
    both halves are drawn from one distribution (the same mix of templates)."""
    import hashlib

    from reasonloop.text import normalize_question

    def confirming(problem) -> bool:
        return hashlib.sha256(normalize_question(problem.question).encode()).digest()[0] % 2 == 1

    return [p for p in problems if confirming(p) == (half == "confirmation")]


def choose_rule(rows: list[dict]) -> dict | None:
    """The pre-set choice on the development set: of the (k, temperature, threshold) whose precision
    minus two standard errors is still >= 90%, the one accepting the most right answers (ties: smaller
    k, then lower temperature)."""
    import math

    def safe(row):
        p, n = row["precision"], row["accepted"]
        return n > 0 and p - 2 * math.sqrt(p * (1 - p) / n) >= 0.90

    eligible = [row for row in rows if safe(row)]
    return max(eligible, key=lambda r: (r["accepted_right"], -r["k"], -r["temperature"]), default=None)


def step_agreement(out: Path, args) -> dict:
    from reasonloop.sources.synth.agreement import AgreementSettings, agreement_report, sample_answers

    pool, left_out = known_problems(args.known_seeds, args.per_template, args.leave_out_seeds)
    known = half_of(pool, args.half)
    grid = [(int(k), float(t)) for k, t in (item.split(":") for item in args.grid.split(","))]
    runs, rows = [], []
    for k, temperature in grid:
        settings = AgreementSettings(k=k, temperature=temperature, batch_size=args.batch_size)
        started = time.perf_counter()
        answers = sample_answers(known, out / "solver", settings)
        thresholds = sorted({c / k for c in range(1, k + 1) if c / k >= 0.5} | {0.25, 0.4, 0.6, 0.75, 0.9})
        reports = [{"k": k, "temperature": temperature} | agreement_report(known, answers, t).to_dict()
                   for t in thresholds]
        rows += reports
        runs.append({"k": k, "temperature": temperature, "seconds": round(time.perf_counter() - started, 1),
                     "by_threshold": reports})
        print(f"agreement k={k} T={temperature}: {runs[-1]['seconds']} s", flush=True)
    result = {"set": args.half, "seeds": args.known_seeds, "leave_out_seeds": args.leave_out_seeds,
              "pool": len(pool), "problems": len(known), "left_out_seen_or_repeated": left_out, "runs": runs}
    if args.half == "development":
        result["chosen"] = choose_rule(rows)
    return result


def step_backtranslate(out: Path, args) -> dict:
    from reasonloop.sources.synth.backtranslate import BTSettings, backtranslate
    from reasonloop.train.sft import SFTSettings

    train_t, held_t = templates()
    train = problems(train_t, 25, 0)
    solutions = problems(held_t, args.bt_per_template, 5)
    sft = SFTSettings(learning_rate=0.003, batch_size=24, max_steps=args.bt_steps, adam_beta2=0.95)
    started = time.perf_counter()
    result = backtranslate(out / "solver", out / "solver", train, solutions, out / "bt",
                           BTSettings(rounds=args.rounds, samples=args.bt_samples, batch_size=args.batch_size, sft=sft))
    return {"train_pairs": len(train), "solutions": len(solutions), "rounds": [r.to_dict() for r in result.rounds],
            "kept_examples": [(p.question, p.answer) for p in result.kept[:5]],
            "seconds": round(time.perf_counter() - started, 1),
            "solver_on_kept_pairs": solver_trained_on(result.kept, out, held_t, solutions)}


def solver_trained_on(kept: list, out: Path, held_t, solutions) -> dict:
    """The solver fine-tuned on the kept (generated question, solution) pairs against the same solver
    before, greedy, on fresh problems of the held-back templates (none of the translated solutions)."""
    from reasonloop.stats import mcnemar
    from reasonloop.text import normalize_question
    from reasonloop.train.heldout import evaluate_accuracy
    from reasonloop.train.sft import SFTSettings, train_sft

    if not kept:
        return {"skipped": "no pairs kept"}
    translated = {normalize_question(p.question) for p in solutions}
    fresh = [p for p in problems(held_t, 25, 6) if normalize_question(p.question) not in translated]
    steps = 20
    trained = train_sft(out / "solver", kept, out / "bt" / "solver-on-kept",
                        SFTSettings(learning_rate=1e-3, batch_size=min(len(kept), 24), max_steps=steps))
    before, after = (evaluate_accuracy(model, fresh, max_new_tokens=160).correct for model in (out / "solver", trained))
    test = mcnemar(after, before)
    return {"pairs": len(kept), "sft_steps": steps, "problems": len(fresh), "before": sum(before) / len(fresh),
            "after": sum(after) / len(fresh), "after_only": test.only_a, "before_only": test.only_b, "p": test.p_value}


def step_qpo(out: Path, args) -> dict:
    from reasonloop.sources.synth.agreement import AgreementSettings
    from reasonloop.sources.synth.qft import generate_questions
    from reasonloop.sources.synth.qpo import distinct, preference_pairs, score_questions, train_qpo, two_proportion_test
    from reasonloop.train.dpo import DPOSettings

    settings = AgreementSettings(k=args.k, batch_size=args.batch_size)

    def solvable_distinct(writer, seed):
        drawn = distinct(generate_questions(writer, args.questions, temperature=args.temperature, seed=seed,
                                            batch_size=args.batch_size).problems)
        scored = score_questions(drawn, out / "solver", settings)
        return scored, sum(s.solvable for s in scored), len(scored)

    started = time.perf_counter()
    train_scored, _, _ = solvable_distinct(out / "writer", 2)
    pairs = preference_pairs(train_scored, max_pairs=args.pairs)
    if not pairs:
        return {"stopped": "no preference pairs", "solvable_of_distinct": [sum(s.solvable for s in train_scored),
                                                                          len(train_scored)]}
    train_qpo(out / "writer", pairs, out / "qpo", DPOSettings(learning_rate=args.qpo_lr, batch_size=16,
                                                             max_steps=args.qpo_steps, beta=0.1))
    _, before, n_before = solvable_distinct(out / "writer", 3)
    _, after, n_after = solvable_distinct(out / "qpo", 3)
    test = two_proportion_test(before, n_before, after, n_after)
    return {"pairs": len(pairs), "train_side": [sum(s.solvable for s in train_scored), len(train_scored)],
            "questions_sampled_each_side": args.questions, "test": test.to_dict(),
            "seconds": round(time.perf_counter() - started, 1)}


STEPS = {"solver": step_solver, "qft": step_qft, "agreement": step_agreement, "backtranslate": step_backtranslate,
         "qpo": step_qpo}


def seeds(text: str) -> tuple[int, ...]:
    return tuple(int(item) for item in text.split(",") if item.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("steps", nargs="+", choices=sorted(STEPS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--solver-steps", type=int, default=800)
    parser.add_argument("--qft-steps", type=int, default=300)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=8, help="qft, qpo: solutions per question for the agreement rule")
    parser.add_argument("--grid", default="16:1.2,32:1.0,32:1.2,32:1.4",
                        help="agreement step: the k:temperature settings measured, comma-separated")
    parser.add_argument("--known-seeds", type=seeds, default=KNOWN_SEEDS,
                        help="agreement step: seeds of the known-answer problems, pooled")
    parser.add_argument("--leave-out-seeds", type=seeds, default=LOOKED_AT_SEEDS,
                        help="agreement step: leave out these seeds' questions (sets already looked at)")
    parser.add_argument("--half", choices=("development", "confirmation"), default="development",
                        help="agreement step: which half of the pooled problems (split by question) to measure; "
                        "the rule is chosen on the development half")
    parser.add_argument("--per-template", type=int, default=25, help="agreement step: problems per template and seed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bt-steps", type=int, default=200)
    parser.add_argument("--bt-per-template", type=int, default=10)
    parser.add_argument("--bt-samples", type=int, default=2, help="backtranslate: questions written per solution")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--qpo-steps", type=int, default=60)
    parser.add_argument("--qpo-lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for step in args.steps:
        save(args.out, step, STEPS[step](args.out, args))


if __name__ == "__main__":
    main()
