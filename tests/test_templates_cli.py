"""`reasonloop generate`: good templates become Problem records; bad ones are listed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from reasonloop.records import Problem, read_records


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reasonloop.cli", *args], capture_output=True, text=True)


def test_generate_lists_bad_templates_and_skips_them_on_request(shared_data, tmp_path):
    source = tmp_path / "templates"
    source.mkdir()
    for name in ("0000", "0009"):
        shutil.copy(shared_data / "gsm-symbolic/templates/symbolic" / f"{name}.json", source)
    (source / "broken.json").write_text(json.dumps({
        "question_annotated": "{x,3} apples\n#init:\n- $x = range(1, 5)\n#answer: x + {y",
        "answer_annotated": "#### {x}"}))
    out = tmp_path / "out.jsonl"

    refused = run_cli("generate", "--templates", str(source), "--per-template", "2", "--seed", "1", "-o", str(out))
    assert refused.returncode == 1
    assert "broken.json" in refused.stderr and "line 4" in refused.stderr and "--skip-invalid" in refused.stderr
    assert not out.exists()

    done = run_cli("generate", "--templates", str(source), "--per-template", "2", "--seed", "1", "--skip-invalid",
                   "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote 4 problems from 2 templates (skipped 1 invalid)" in done.stdout
    problems = read_records(out, Problem).records
    assert [p.meta["template"] for p in problems] == ["0000", "0000", "0009", "0009"]
    assert all(p.meta["seed"] == 1 and p.meta["perturbation"] is None for p in problems)


def test_generate_with_a_perturbation_and_bad_options(shared_data, tmp_path):
    template = shared_data / "gsm-symbolic/templates/symbolic/0000.json"
    out = tmp_path / "noop.jsonl"
    done = run_cli("generate", "--templates", str(template), "--per-template", "3", "--perturb", "noop", "-o", str(out))
    assert done.returncode == 0, done.stderr
    problems = read_records(out, Problem).records
    assert len(problems) == 3 and all(p.meta["perturbation"] == "noop" for p in problems)

    bogus = run_cli("generate", "--templates", str(template), "--perturb", "bogus", "-o", str(out))
    assert bogus.returncode == 1 and "unknown perturbation 'bogus'" in bogus.stderr
    missing = run_cli("generate", "--templates", str(tmp_path / "nope"), "-o", str(out))
    assert missing.returncode == 1 and "templates not found" in missing.stderr
