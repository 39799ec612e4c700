"""GSM-Symbolic-compatible problem templates: parse, evaluate safely, sample, perturb.

    from reasonloop.sources.templates import load_templates, generate_problems
    templates, bad = load_templates("my_templates/")
    problems = generate_problems(templates, per_template=10, seed=0)
"""

from __future__ import annotations

from typing import Any

from reasonloop.sources.templates.build import load_template, load_templates, parse_template
from reasonloop.sources.templates.errors import TemplateError
from reasonloop.sources.templates.generate import generate_problems
from reasonloop.sources.templates.perturb import PERTURBATIONS, Perturbation, perturbation
from reasonloop.sources.templates.template import Template

__all__ = [
    "Template", "TemplateError", "parse_template", "load_template", "load_templates", "builtin_templates",
    "generate_problems", "PERTURBATIONS", "Perturbation", "perturbation",
]


def builtin_templates(*args: Any, **kwargs: Any):
    """The built-in template library (imported lazily: reasonloop/sources/templates/builtin.py)."""
    from reasonloop.sources.templates.builtin import builtin_templates as load_builtin

    return load_builtin(*args, **kwargs)
