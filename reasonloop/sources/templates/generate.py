"""Many problems from many templates: `generate_problems`."""

from __future__ import annotations

from typing import Iterable

from reasonloop.records import Problem
from reasonloop.sources.templates.perturb import get_perturbation
from reasonloop.sources.templates.template import Template


def generate_problems(templates: Iterable[Template], *, per_template: int, seed: int,
                      perturb: str | None = None) -> list[Problem]:
    """`per_template` instances of each template for `seed` (indices 0..per_template-1).

    With `perturb` (a name in PERTURBATIONS) each instance is that perturbation of the
    instance the same (template, seed, index) gives without it; `meta["base_id"]` links them.
    """
    if per_template < 0:
        raise ValueError(f"per_template must be >= 0, got {per_template}")
    if perturb is None:
        return [template.sample(seed, index) for template in templates for index in range(per_template)]
    apply = get_perturbation(perturb).apply
    return [apply(template, seed, index) for template in templates for index in range(per_template)]
