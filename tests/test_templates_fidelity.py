"""Fidelity of the template engine to data nobody here wrote: GSM-Symbolic's p2 templates
with rare conditions, pools as the published instances show them, and byte-identical
output for every template that generated before the enumeration fallback existed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reasonloop.sources.templates import TemplateError, load_template
from reasonloop.sources.templates.builtin import LIBRARY_DIR

PINNED = Path(__file__).parent / "data" / "template_hashes.json"
PINNED_SEED, PINNED_INDICES = 7, range(3)


def instance_hash(template) -> str:
    """sha256 over the full records of a few instances: any change in a draw shows."""
    digest = hashlib.sha256()
    for index in PINNED_INDICES:
        problem = template.sample(PINNED_SEED, index)
        digest.update(json.dumps(problem.model_dump(), sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def pinned_files(shared_data: Path) -> dict[str, Path]:
    shared = sorted((shared_data / "gsm-symbolic" / "templates").glob("*/*.json"))
    files = {f"{path.parent.name}/{path.stem}": path for path in shared}
    files.update({f"builtin/{path.stem}": path for path in sorted(LIBRARY_DIR.glob("*.json"))})
    return files


def current_hashes(shared_data: Path) -> dict[str, str]:
    hashes = {}
    for name, path in pinned_files(shared_data).items():
        try:
            hashes[name] = instance_hash(load_template(path, check=False))
        except TemplateError:
            hashes[name] = "refused"
    return hashes


def test_instances_are_byte_identical_to_the_pinned_ones(shared_data):
    pinned = json.loads(PINNED.read_text())
    got = current_hashes(shared_data)
    changed = {name: (pinned.get(name), value) for name, value in got.items()
               if pinned.get(name) not in (None, "refused") and pinned[name] != value}
    assert not changed, f"instances changed for {len(changed)} template(s): {changed}"
    assert len([name for name in pinned if pinned[name] != "refused"]) >= 270


if __name__ == "__main__":  # regenerate: python tests/test_templates_fidelity.py
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    PINNED.write_text(json.dumps(current_hashes(root), indent=1, sort_keys=True) + "\n")
