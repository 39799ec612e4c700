"""The built-in template library: the default problem source, no download needed.

`library/NNNN_<slug>.json` holds templates written for reasonloop in the GSM-Symbolic
dialect (`question_annotated` with `#init:`/`#conditions:`/`#answer:`, a worked
`answer_annotated` with one `<<a op b=c>>` calculator step per arithmetic operation),
plus `id`, `topic` and `steps` (the number of those operations). They span 1 to 8
steps over arithmetic, rates, percentages, fractions, money, time and geometry; see
docs/builtin-library.md. The library's difficulty is frozen: training numbers are
measured on it as it is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from reasonloop.errors import ReasonloopError
from reasonloop.records import Problem

if TYPE_CHECKING:
    from reasonloop.sources.templates.template import Template

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


@lru_cache(maxsize=1)
def _library() -> tuple["Template", ...]:
    from reasonloop.sources.templates.build import load_template

    paths = sorted(LIBRARY_DIR.glob("*.json"))
    if not paths:
        raise ReasonloopError(f"built-in template library is missing: no *.json in {LIBRARY_DIR}")
    return tuple(load_template(path) for path in paths)


def builtin_templates(*, max_steps: int | None = None, min_steps: int | None = None) -> list["Template"]:
    """The library's templates (in file order) with min_steps <= steps <= max_steps."""
    chosen = [template for template in _library()
              if (min_steps is None or template.steps >= min_steps)
              and (max_steps is None or template.steps <= max_steps)]
    if not chosen:
        spread = sorted({template.steps for template in _library()})
        raise ReasonloopError(f"no built-in template has min_steps={min_steps}, max_steps={max_steps} "
                              f"(the library has {spread[0]} to {spread[-1]} steps)")
    return chosen


def builtin_problems(n_per_template: int, seed: int, *, max_steps: int | None = None, min_steps: int | None = None,
                     perturb: str | None = None) -> list[Problem]:
    """`n_per_template` seeded instances of each selected template (optionally perturbed)."""
    from reasonloop.sources.templates.generate import generate_problems

    templates = builtin_templates(max_steps=max_steps, min_steps=min_steps)
    return generate_problems(templates, per_template=n_per_template, seed=seed, perturb=perturb)
