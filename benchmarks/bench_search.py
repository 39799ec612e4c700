"""Test-time search at small scale, end to end, in one process (issue #22's on-demand numbers).

1. Problems from the built-in templates (1-3 steps): SFT set, labelling set, development and
   confirmation sets (disjoint seeds; repeats of SFT questions removed).
2. A tiny Llama (quickstart shape) SFT-trained twice: the main generator (`--sft-steps`) and a
   second, different one (half the steps, another seed) for MMA.
3. Math-Shepherd labels of the main model's samples on the labelling set; a PRM and an ORM
   trained on them (`reasonloop.train.prm`).
4. The ProcessBench-style benchmark on the confirmation set's templates: rule, ORM, PRM F1.
5. Temperature chosen on the development set (maj@n over `--temperatures`); then on the
   confirmation set: greedy, pass@k, majority, checked vote, best-of-n (PRM min / ORM), weighted vote at n
   samples, and beam, MCTS, refine, MMA at the samples' mean token count per problem;
   McNemar against greedy.

Every number is printed and written to OUT/results.json as it is measured.

    python benchmarks/bench_search.py --out /tmp/search            # defaults: the sizes in docs/results.md
    python benchmarks/bench_search.py --out /tmp/s --tiny          # a one-minute smoke run (numbers meaningless)
    python benchmarks/bench_search.py --out /tmp/search-qs --model runs/quickstart/self_train/model/round-2 \
        --second-model runs/quickstart/sft/model                   # the quickstart's checkpoints (issue #22's scale)

With --model the problem sets leave out the quickstart's training and practice questions, the
confirmation set is drawn with quickstart-full's confirmation seed (5) and the labels with seed 6.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path

from reasonloop.evaluate.metrics import coverage_fit, pass_at_k
from reasonloop.evaluate.processbench import build_benchmark, processbench_f1, reward_predictions, rule_predictions
from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.search import SolveSettings
from reasonloop.solve import CachedSampler, directory_caches, solve
from reasonloop.sources.templates import builtin_templates, generate_problems
from reasonloop.stats import mcnemar

RESULTS: dict = {}
STARTED = time.perf_counter()


def report(key: str, value) -> None:
    RESULTS[key] = value
    print(f"[{time.perf_counter() - STARTED:6.0f}s] {key}: {json.dumps(value)}", flush=True)
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=2))


def sample(problems: list, count: int) -> list:
    return random.Random(0).sample(problems, min(count, len(problems)))


def problem_sets(args):
    templates = builtin_templates(max_steps=3)
    train = generate_problems(templates, per_template=args.train_per_template, seed=0)
    seen = {p.question for p in train}
    if args.model:  # the quickstart's checkpoints also trained on its practice set (seed 2, 30 per template)
        seen |= {p.question for p in generate_problems(templates, per_template=30, seed=2)}
    fresh = lambda seed, k: [p for p in generate_problems(templates, per_template=k, seed=seed) if p.question not in seen]  # noqa: E731
    # a seeded sample, not the first N: instances come in template order, so the first N would
    # cover only the first few templates
    dev = sample(fresh(3, args.eval_per_template), args.dev_problems)
    confirm_seed = args.confirm_seed if args.confirm_seed is not None else 5 if args.model else 1
    # a template can repeat a question across seeds: the confirmation set leaves out the development
    # set's questions (after sampling, so the kept problems are those of the same draw)
    chosen = {p.question for p in dev}
    confirm = [p for p in sample(fresh(confirm_seed, args.eval_per_template), args.eval_problems) if p.question not in chosen]
    measured = {p.question for p in dev + confirm}  # the reward models never train on a measured question
    label = [p for p in fresh(6 if args.model else 2, args.label_per_template) if p.question not in measured]
    gold = [p for p in fresh(41, args.gold_per_template) if p.question not in measured] if args.gold_swaps else []
    return train, label, gold, dev, confirm


def train_generators(train, args):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model
    from reasonloop.pipeline.stages.models import training_texts
    from reasonloop.train.sft import SFTSettings, train_sft

    fmt = replace(PLAIN_FORMAT, calculator=True)
    tiny = create_tiny_model(OUT / "tiny", training_texts(train, fmt), TinyConfig(num_layers=3), number_tokens=1000)
    fmt.save(tiny)
    settings = SFTSettings(learning_rate=0.005, batch_size=24, max_steps=args.sft_steps, adam_beta2=0.95, save_steps=10**6)
    main = train_sft(tiny, train, OUT / "sft", settings)
    other = train_sft(tiny, train, OUT / "sft_half", replace(settings, max_steps=args.sft_steps // 2, seed=1))
    return Path(main), Path(other), fmt


def solved_row(name, solved, greedy_marks=None) -> dict:
    marks = solved.correct()
    row = {"accuracy": round(100 * sum(marks) / len(marks), 1),
           "tokens_per_problem": round(solved.tokens() / len(marks), 1),
           "calls_per_problem": round(sum(r.calls for r in solved.results) / len(marks), 2),
           "reward_calls_per_problem": round(sum(r.reward_calls for r in solved.results) / len(marks), 2)}
    if greedy_marks is not None:
        test = mcnemar(marks, greedy_marks)
        row["vs_greedy"] = f"+{test.only_a}/-{test.only_b}, p={test.p_value:.3g}"
    return row


def report_coverage(samples) -> None:
    """pass@k for k = 1, 2, 4, ... up to the samples drawn, and the Large Language Monkeys fit."""
    counts = [(len(vs), sum(v.correct for v in vs)) for vs in samples.verdicts]
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= min(n for n, _ in counts)]
    coverage = [sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks]
    report("pass_at_k", {str(k): round(100 * c, 1) for k, c in zip(ks, coverage)})
    if sum(0 < c < 1 for c in coverage) < 2:
        return report("coverage_fit", "not fitted: fewer than 2 pass@k values strictly between 0 and 1")
    a, b = coverage_fit(ks, coverage)
    report("coverage_fit", {"a": round(a, 4), "b": round(b, 4), "formula": "exp(a * k**b)",
                            "fitted": {str(k): round(100 * math.exp(a * k ** b), 1) for k in ks}})


STRATEGY_ROWS = ("greedy", "majority", "checked_vote", "best_of_n_prm_min", "best_of_n_prm_product", "best_of_n_orm", "weighted_vote_prm",
                 "best_of_n_chosen_on_dev",
                 "beam", "mcts", "mcts_second_model", "refine", "mma")


def write_figures(out: Path) -> None:
    """OUT/pass-at-k.svg (measured, with the coverage fit) and OUT/accuracy-vs-tokens.svg (one point
    per strategy at its tokens per problem), drawn from OUT/results.json with the report's plotting."""
    from reasonloop.report.plots import coverage_curve, draw

    results = json.loads((out / "results.json").read_text())
    if "pass_at_k" in results:
        passes = {int(k): v / 100 for k, v in results["pass_at_k"].items()}

        def paint_coverage(figure):
            ax = figure.subplots()
            ax.plot(list(passes), [100 * v for v in passes.values()], "o-", label="pass@k (measured)")
            if fit := coverage_curve(passes):
                ax.plot(*fit, ":", label="fit exp(a·k^b)")
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(passes), [str(k) for k in passes])
            ax.set(xlabel="k (samples per problem)", ylabel="coverage (%)")
            ax.legend(fontsize=8)

        (out / "pass-at-k.svg").write_text(draw("pass-at-k", "pass@k", paint_coverage).svg)
    rows = [(name, results[name]) for name in STRATEGY_ROWS if name in results]
    if "pass_at_k" in results and "matched_budget_tokens_per_problem" in results and "majority" in results:
        per_sample = results["matched_budget_tokens_per_problem"] / results["majority"]["calls_per_problem"]
        rows.append(("sample (pass@1)", {"accuracy": results["pass_at_k"]["1"], "tokens_per_problem": per_sample}))

    points: dict[tuple[float, float], list[str]] = {}
    for name, row in rows:  # strategies at the same point share one label
        points.setdefault((row["tokens_per_problem"], row["accuracy"]), []).append(name)

    def paint_tokens(figure):
        ax = figure.subplots()
        for (tokens, accuracy), names in points.items():
            ax.plot([tokens], [accuracy], "o")
            ax.annotate(" = ".join(names), (tokens, accuracy), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xscale("log")
        ticks = [t for t in (25, 50, 100, 200, 500, 1000, 2000, 5000) if min(points)[0] / 2 <= t <= max(points)[0] * 2]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel="generated tokens per problem", ylabel="accuracy (%)")

    if rows:
        (out / "accuracy-vs-tokens.svg").write_text(draw("accuracy-tokens", "accuracy vs tokens", paint_tokens, size=(7.0, 4.0)).svg)


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    parser.add_argument("--sft-steps", type=int, default=800)
    parser.add_argument("--train-per-template", type=int, default=25)
    parser.add_argument("--label-per-template", type=int, default=6)
    parser.add_argument("--label-solutions", type=int, default=4, help="sampled solutions per labelling problem")
    parser.add_argument("--label-completions", type=int, default=4, help="Math-Shepherd continuations per step prefix")
    parser.add_argument("--eval-per-template", type=int, default=8)
    parser.add_argument("--eval-problems", type=int, default=200)
    parser.add_argument("--dev-problems", type=int, default=100)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--pass-k-n", type=int, default=64, help="samples per problem for pass@k and the coverage fit")
    parser.add_argument("--model", help="main generator: a trained checkpoint (e.g. the quickstart's self_train/model/round-2) "
                                        "instead of training one")
    parser.add_argument("--second-model", help="MMA's second generator with --model (e.g. the quickstart's sft/model)")
    parser.add_argument("--prm-steps", type=int, default=400)
    parser.add_argument("--swaps", type=int, default=0, help="wrong copies of each verified-correct labelled solution with an "
                                                                 "operand swapped for another question number (train.prm.corrupted_labels)")
    parser.add_argument("--slips", type=int, default=0, help="... with an operand replaced by a number not in the question")
    parser.add_argument("--gold-swaps", type=int, default=0, help="template solutions (seed 41, --gold-per-template) and as "
                                                                      "many swapped copies of each added to the reward models' data")
    parser.add_argument("--gold-per-template", type=int, default=60)
    parser.add_argument("--confirm-seed", type=int, help="the confirmation set's seed (default 5 with --model, else 1)")
    parser.add_argument("--temperatures", default="0.6,0.8,1.0")
    parser.add_argument("--reuse", action="store_true", help="reuse OUT's generators and reward models if present")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: mma,mcts,beam,refine")
    parser.add_argument("--dev-only", action="store_true", help="stop after the development-set choices: nothing is "
                                                                    "measured on the confirmation set")
    parser.add_argument("--figures-only", action="store_true", help="redraw OUT's figures from OUT/results.json and stop")
    args = parser.parse_args()
    if args.figures_only:
        return write_figures(Path(args.out))
    if args.tiny:
        args.sft_steps, args.train_per_template, args.label_per_template = 40, 3, 1
        args.eval_per_template, args.eval_problems, args.dev_problems, args.n, args.prm_steps, args.temperatures = 1, 6, 6, 4, 10, "0.8"
        args.pass_k_n = 4
    OUT = Path(args.out)
    OUT.mkdir(parents=True, exist_ok=True)
    train, label, gold, dev, confirm = problem_sets(args)
    report("problems", {"sft": len(train), "label": len(label), "gold": len(gold), "dev": len(dev), "confirm": len(confirm),
                        "dev_confirm_overlap": len({p.question for p in dev} & {p.question for p in confirm})})
    if args.model:
        from reasonloop.prompts import load_prompt_format

        if not args.second_model:
            parser.error("--model needs --second-model (MMA's other generator)")
        main_model, other_model, fmt = Path(args.model), Path(args.second_model), load_prompt_format(args.model)
    elif args.reuse and (OUT / "sft_half" / "config.json").is_file():
        main_model, other_model = OUT / "sft", OUT / "sft_half"
        fmt = replace(PLAIN_FORMAT, calculator=True)
    else:
        main_model, other_model, fmt = train_generators(train, args)
    report("generators", {"main": str(main_model), "other": str(other_model)})

    from reasonloop.models import load_generator
    from reasonloop.search.reward import RewardModel, LOADED
    from reasonloop.train.prm import PRMSettings, fit_reward_model, shepherd_labels, corrupted_labels, gold_labels, training_rows, write_labels

    generator = load_generator(str(main_model), batch_size=256)
    caches = directory_caches(OUT / "cache")
    sampler = CachedSampler(generator, fmt, generator.fingerprint(), caches)
    base = SolveSettings(strategy="sample", n=4, temperature=0.8, max_new_tokens=160, batch_size=256)
    if args.reuse and (OUT / "orm" / "reasonloop_reward.json").is_file():
        models = {kind: str(OUT / kind) for kind in ("prm", "orm")}
        for path in models.values():
            LOADED[path] = RewardModel.load(path, device=generator.device)
        return measure(args, generator, caches, base, fmt, confirm, dev, models, other_model)
    labels = shepherd_labels(label, sampler, base, solutions=args.label_solutions, completions=args.label_completions,
                             caches=caches)
    usable = [item for item in labels if not item.error]
    report("labels", {"solutions": len(labels), "with_steps": len(usable),
                      "steps": sum(len(i.steps) for i in usable), "good_steps": sum(sum(i.hard) for i in usable),
                      "correct_solutions": sum(i.outcome for i in usable)})
    if args.swaps or args.slips:
        copies = corrupted_labels(labels, label, args.swaps, slips=args.slips, seed=0)
        report("corrupted_copies", {"solutions": len(copies), "steps": sum(len(i.steps) for i in copies)})
        labels += copies
    if args.gold_swaps:
        golds = gold_labels(gold, fmt)
        copies = corrupted_labels(golds, gold, args.gold_swaps, seed=0)
        report("gold_copies", {"gold": len(golds), "swapped": len(copies)})
        labels += golds + copies
    write_labels(OUT / "labels.jsonl", labels)
    prm_settings = PRMSettings(max_steps=args.prm_steps, learning_rate=3e-4, batch_size=32, save_steps=10**6)
    models = {}
    for kind in ("prm", "orm"):
        rows = training_rows(labels, generator.tokenizer, kind, 512)
        path = OUT / kind
        if not (args.reuse and (path / "reasonloop_reward.json").is_file()):
            path = fit_reward_model(main_model, rows, path, replace(prm_settings, kind=kind))
        models[kind] = str(path)
        LOADED[str(path)] = RewardModel.load(path, device=generator.device)
    measure(args, generator, caches, base, fmt, confirm, dev, models, other_model)


def choose_reward_ranking(dev, generator, sampled, fmt, caches, models) -> str:
    """The reward-ranked selection (best-of-n or weighted vote; PRM min / last / product, ORM) with the
    best development-set accuracy on the same n samples (ties go to the first listed); the confirmation
    set then measures it once."""
    prm, orm = models["prm"], models["orm"]
    candidates = [f"best_of_n:reward_model={prm},aggregate={how}" for how in ("min", "last", "product")]
    candidates += [f"best_of_n:reward_model={orm}"]
    candidates += [f"weighted_vote:reward_model={prm},aggregate={how}" for how in ("min", "last", "product")]
    candidates += [f"weighted_vote:reward_model={orm}"]
    scores = {name: solve(dev, generator, replace(sampled, strategy=name), prompt_format=fmt, caches=caches).accuracy()
              for name in candidates}
    chosen = max(candidates, key=lambda name: scores[name])
    short = lambda name: name.replace(prm, "PRM").replace(orm, "ORM")  # noqa: E731
    report("dev_reward_ranking", {short(name): round(100 * score, 1) for name, score in scores.items()}
           | {"chosen": short(chosen)})
    return chosen


def measure(args, generator, caches, base, fmt, confirm, dev, models, other_model) -> None:
    from reasonloop.models import load_generator
    from reasonloop.search.reward import LOADED

    temps = [float(t) for t in args.temperatures.split(",")]
    dev_scores = {}
    for temperature in temps:
        dev_solved = solve(dev, generator, replace(base, strategy="majority", n=args.n, temperature=temperature),
                           prompt_format=fmt, caches=caches)
        dev_scores[temperature] = dev_solved.accuracy()
    temperature = max(temps, key=lambda t: (dev_scores[t], -t))
    report("dev_majority_by_temperature", {str(t): round(100 * s, 1) for t, s in dev_scores.items()} | {"chosen": temperature})

    sampled = replace(base, n=args.n, temperature=temperature)
    ranked = choose_reward_ranking(dev, generator, sampled, fmt, caches, models)
    greedy_settings = replace(base, strategy="greedy", n=1, temperature=0.0)
    baselines = {"greedy": greedy_settings, "majority": replace(sampled, strategy="majority"),
                 "checked_vote": replace(sampled, strategy="checked_vote")}
    report("dev_baselines", {name: round(100 * solve(dev, generator, settings, prompt_format=fmt, caches=caches).accuracy(), 1)
                             for name, settings in baselines.items()})
    if args.dev_only:
        return

    items, dropped = build_benchmark(confirm, fmt, seed=0)
    labels_ = [i.label for i in items]
    bench = {"items": len(items), "dropped": dropped, "rule": processbench_f1(labels_, rule_predictions(items))}
    for kind, path in models.items():
        bench[kind] = processbench_f1(labels_, reward_predictions(LOADED[path], items))
    report("processbench", bench)

    greedy = solve(confirm, generator, greedy_settings, prompt_format=fmt, caches=caches)
    greedy_marks = greedy.correct()
    report("greedy", solved_row("greedy", greedy))

    samples = solve(confirm, generator, replace(sampled, strategy="sample"), prompt_format=fmt, caches=caches)
    report_coverage(solve(confirm, generator, replace(sampled, strategy="sample", n=max(args.n, args.pass_k_n)),
                          prompt_format=fmt, caches=caches))
    budget = max(1, round(samples.tokens() / len(confirm)))
    report("matched_budget_tokens_per_problem", budget)

    other = load_generator(str(other_model), batch_size=256)
    mcts = f"mcts:reward_model={models['prm']},iterations=24,expand=2"
    runs = [("majority", "majority", generator),
            ("checked_vote", "checked_vote", generator),
            ("best_of_n_prm_min", f"best_of_n:reward_model={models['prm']},aggregate=min", generator),
            ("best_of_n_prm_product", f"best_of_n:reward_model={models['prm']},aggregate=product", generator),
            ("best_of_n_orm", f"best_of_n:reward_model={models['orm']}", generator),
            ("weighted_vote_prm", f"weighted_vote:reward_model={models['prm']},aggregate=min", generator),
            ("best_of_n_chosen_on_dev", ranked, generator),
            ("beam", f"beam:reward_model={models['prm']},width=4,expand=4", generator),
            ("mcts", mcts, generator),
            ("mcts_second_model", mcts, other),
            ("refine", "refine:rounds=2", generator),
            ("mma", f"mma:models={other_model},iterations=24", generator)]
    skip = set(filter(None, args.skip.split(",")))
    for name, strategy, model in runs:
        if name.split("_")[0] in skip:
            continue
        matched = not name.startswith(("majority", "checked", "best", "weighted"))
        settings = replace(sampled, strategy=strategy, budget=budget if matched else None)
        started = time.perf_counter()
        solved = solve(confirm, model, settings, prompt_format=fmt, caches=caches)
        report(name, solved_row(name, solved, greedy_marks) | {"seconds": round(time.perf_counter() - started, 1)})
        if name in ("beam", "mma"):
            (OUT / f"trees-{name}.jsonl").write_text("".join(json.dumps({"problem_id": k, "tree": v}) + "\n"
                                                         for k, v in solved.trees().items()))
    write_figures(OUT)


if __name__ == "__main__":
    main()
