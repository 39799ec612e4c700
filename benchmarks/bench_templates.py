"""Template sampling throughput: compiled templates vs re-parsing the file for every instance.

Both sides produce the same `Problem`s (checked) from the built-in library on one core:

- compiled: `builtin_templates()` loaded once (every expression parsed and turned into
  closures once), then `generate_problems(templates, per_template=N, seed=S)`;
- naive baseline: for every instance, read the template file, parse its JSON and its
  expressions (`ast.parse` + walk) again, then draw that one instance.

Each side's time is the median of `--repeats` runs after a warm-up; only produced
instances count.

Then a rare template (5 variables, each range depending on the one before, conditions a
Pythagorean triple and two divisibility tests: one draw in ~10 million satisfies them):
the time to 50 distinct valid instances with the enumeration fallback (enumeration
included, fresh template), against rejection sampling alone, whose time is estimated
as expected draws per instance x measured seconds per draw (running it would take hours).

    flock /tmp/rl-heavy.lock env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_templates.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

from reasonloop.sources.templates import TemplateError, generate_problems, load_template, parse_template
from reasonloop.sources.templates.build import ANSWER_SOURCES
from reasonloop.sources.templates.builtin import builtin_templates
from reasonloop.sources.templates.helpers import make_rng

RARE = {
    "question_annotated": "A right triangle has legs {a,3} and {b,4} and hypotenuse {c,5}; rods are {d,10} and "
                          "{e,17} long. What is the sum of the five lengths?\n\n#init:\n- $a = range(3, 80)\n"
                          "- $b = range(a + 1, 120)\n- $c = range(b + 1, 170)\n- $d = range(c + 1, 400)\n"
                          "- $e = range(d + 1, d + 60)\n\n"
                          "#conditions:\n- a * a + b * b == c * c\n- divides(d, c)\n- divides(e, 17)\n\n"
                          "#answer: a + b + c + d + e",
    "answer_annotated": "{a} + {b} + {c} + {d} + {e} = <<{a}+{b}+{c}+{d}+{e}={a+b+c+d+e}>>{a+b+c+d+e}\n"
                        "#### {a+b+c+d+e}",
}


def rare_benchmark(count: int = 50) -> None:
    template = parse_template(RARE, name="rare.json", check=False)
    start = time.perf_counter()
    problems, questions = [], set()
    while len(questions) < count:  # uniform draws may repeat an instance: index on until `count` differ
        problems.append(template.sample(0, len(problems)))
        questions.add(problems[-1].question)
    seconds = time.perf_counter() - start
    space = template.space()
    for problem in problems:
        a, b, c, d, e = (problem.meta["vars"][name] for name in "abcde")
        assert a * a + b * b == c * c and d % c == 0 and e % 17 == 0 and problem.answer == str(a + b + c + d + e)
    failures: Counter[str] = Counter()
    rng = make_rng("rare", 0, 0)
    draws = 20_000
    start = time.perf_counter()
    for _ in range(draws):
        template._try_draw(rng, None, None, failures)
    per_draw = (time.perf_counter() - start) / draws
    rejection = count / space.chance * per_draw
    print(f"rare template (1 draw in {1 / space.chance:,.0f} satisfies; {len(space.solutions)} solutions in a space "
          f"of {space.size:,}): {count} distinct valid instances ({len(problems)} indices) in {seconds:.2f} s with the "
          f"enumeration fallback "
          f"vs ~{rejection / 3600:,.1f} h by rejection alone ({per_draw * 1e6:.1f} us/draw): "
          f"{rejection / seconds:,.0f}x")


def all_shared(directory: Path, count: int = 50, answer_from: str = "answer") -> None:
    """Every template file under `directory`: `count` instances each, or the data error it is refused with."""
    start, generated, refused = time.perf_counter(), 0, []
    paths = sorted(directory.rglob("*.json"))
    for path in paths:
        template = load_template(path, check=False, answer_from=answer_from)
        try:
            for index in range(count):
                template.sample(0, index)
            generated += 1
        except TemplateError as error:
            refused.append(str(error))
    print(f"{generated} of {len(paths)} templates generate {count} instances each; {len(refused)} refused "
          f"({time.perf_counter() - start:.0f} s):")
    for reason in refused:
        print(f"  {reason[:240]}")


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
    parser.add_argument("--all-shared", type=Path, metavar="DIR",
                        help="instead: 50 instances of every template under DIR "
                             "(../shared/data/gsm-symbolic/templates) or its data error")
    parser.add_argument("--answer-from", default="answer", choices=ANSWER_SOURCES,
                        help="with --all-shared: each file's answer from #answer (checked) or its worked solution")
    args = parser.parse_args()
    if args.all_shared:
        all_shared(args.all_shared, answer_from=args.answer_from)
        return

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
    rare_benchmark()


if __name__ == "__main__":
    main()
