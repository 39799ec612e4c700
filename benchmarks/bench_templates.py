"""Template sampling throughput: compiled templates vs re-parsing the file for every instance.

Both sides produce the same `Problem`s (checked) from the built-in library on one core:

- compiled: `builtin_templates()` loaded once (every expression parsed and turned into
  closures once), then `generate_problems(templates, per_template=N, seed=S)`;
- naive baseline: for every instance, read the template file, parse its JSON and its
  expressions (`ast.parse` + walk) again, then draw that one instance.

Each side's time is the median of `--repeats` runs after a warm-up; only produced
instances count.

    flock /tmp/rl-heavy.lock env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_templates.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from reasonloop.sources.templates import generate_problems, load_template
from reasonloop.sources.templates.builtin import builtin_templates


def compiled_run(templates, per_template: int, seed: int):
    return generate_problems(templates, per_template=per_template, seed=seed)


def naive_run(paths, per_template: int, seed: int):
    return [load_template(path, check=False).sample(seed, index) for path in paths for index in range(per_template)]


def timed(function, *args) -> tuple[float, list]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-template", type=int, default=100, help="instances per template (compiled side)")
    parser.add_argument("--naive-per-template", type=int, default=5, help="instances per template (baseline)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    templates = builtin_templates()
    paths = [template.source_path for template in templates]
    compiled_run(templates, 2, args.seed)  # warm-up
    naive_run(paths, 1, args.seed)

    same = compiled_run(templates, args.naive_per_template, args.seed)
    baseline = naive_run(paths, args.naive_per_template, args.seed)
    by_key = {(p.meta["template"], p.meta["index"]): p.model_dump() for p in same}
    assert all(by_key[(p.meta["template"], p.meta["index"])] == p.model_dump() for p in baseline), \
        "compiled and naive sampling disagree"

    compiled_times, naive_times = [], []
    for repeat in range(args.repeats):
        seconds, problems = timed(compiled_run, templates, args.per_template, args.seed + repeat)
        compiled_times.append(len(problems) / seconds)
        seconds, problems = timed(naive_run, paths, args.naive_per_template, args.seed + repeat)
        naive_times.append(len(problems) / seconds)
    compiled, naive = statistics.median(compiled_times), statistics.median(naive_times)
    print(f"template sampling ({len(templates)} built-in templates, one core): {compiled:,.0f} instances/s compiled "
          f"vs {naive:,.0f} instances/s re-parsing each instance: {compiled / naive:.1f}x "
          f"(identical problems checked on {len(baseline)})")


if __name__ == "__main__":
    main()
