"""The HTML report without a browser: content, escaping, bad input (see test_report_browser.py
for rendering and the trace viewer's behaviour in Chromium)."""

import base64
import hashlib
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from reasonloop.rundir import RunFormatError, make_manifest, write_manifest
from reasonloop.stats import p_value_text
from reasonloop.report import build_report
from reasonloop.report.build import paired_change
from reasonloop.report.rundata import RunData, load_run
from report_rundir import (HOSTILE, QUICKSTART_EVALS, QUICKSTART_SETS, add_train_log, make_quickstart_runs, make_run,
                           verdict_counts)

PLOT_KEYS = ("training", "accuracy-k", "robustness", "perturbations", "accuracy-tokens", "accuracy-steps")


@pytest.fixture(scope="module")
def two_runs(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    base = make_run(shared_data, root / "base", problems=40, samples=4, seed=0)
    add_train_log(base)
    tuned = make_run(shared_data, root / "tuned", problems=40, samples=4, start=10, seed=1)
    return base, tuned


@pytest.fixture(scope="module")
def report(two_runs):
    return build_report(two_runs)


def embedded_data(html: str) -> dict:
    match = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def figure(html: str, key: str) -> str:
    return re.search(rf'<figure class="plot[^"]*" id="plot-{key}">(.*?)</figure>', html, re.S).group(1)


def summary_row(html: str, name: str) -> str:
    return re.search(rf'<tr data-run="{name}">(.*?)</tr>', html, re.S).group(1)


def section(html: str, name: str) -> str:
    return re.search(rf'<section id="{name}">(.*?)</section>', html, re.S).group(1)


def plot_note(html: str, key: str) -> str:
    """The line that says why a plot was not drawn."""
    return re.search(rf'<(?:li|p) class="missing[^"]*" id="plot-{key}">(.*?)</(?:li|p)>', html, re.S).group(1)


def sign_test_p(better: int, worse: int) -> float:
    """The two-sided exact binomial test, from scipy (not the code under test)."""
    from scipy.stats import binomtest

    return binomtest(better, better + worse, 0.5).pvalue if better + worse else 1.0


def test_report_is_offline_and_allows_only_its_own_script(report):
    html = report.html
    assert not re.search(r'<(link|iframe|object|embed)\b', html)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "@import" not in html and "url(http" not in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_model_text_is_inert_yet_embedded_exactly(report, two_runs):
    html = report.html
    assert "__pwned" in html  # the hostile completions are in the page...
    assert "<script>window.__pwned" not in html and "<img src=x" not in html  # ...but never as markup
    rows = embedded_data(html)["runs"][0]["rows"]
    completions = [row[3] for row in rows]
    assert any(HOSTILE in text for text in completions)  # round-trips exactly through the JSON block
    stored = [json.loads(line)["completion"] for line in (two_runs[0] / "attempts.jsonl").read_text().splitlines()]
    assert completions == stored


def test_trace_rows_match_the_verdict_files(report, two_runs):
    data = embedded_data(report.html)
    status_column = data["columns"].index("status")
    for run_dir, run in zip(two_runs, data["runs"]):
        assert Counter(row[status_column] for row in run["rows"]) == verdict_counts(run_dir)
        assert len(run["problems"]) == 40 and len(run["prompts"]) == 40  # one prompt per problem, stored once


def test_summary_shows_each_runs_metrics(report, two_runs):
    for run_dir in two_runs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        row = summary_row(report.html, run_dir.name)
        low, high = metrics["accuracy_ci95"]
        assert f"{100 * metrics['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]" in row
        assert f"{100 * metrics['pass_at_k']['1']:.1f}%" in row
        check = metrics["step_check"]  # the completions are GSM8K reference solutions, calculator steps and all
        assert check["n"] > 0 and f"{100 * check['consistent']:.1f}% ({check['correct_with_flawed_steps']} right" in row
        for status, count in verdict_counts(run_dir).items():
            assert f'<span class="badge {status}">{status} {count}</span>' in row


def test_every_plot_is_valid_svg_with_ids_unique_in_the_page(report):
    ids = re.findall(r'\bid="([^"]+)"', report.html)
    assert len(ids) == len(set(ids))
    for key in PLOT_KEYS:
        svg = figure(report.html, key)
        root = ET.fromstring(svg[svg.index("<svg"):].strip())
        assert root.tag.endswith("svg") and len(list(root.iter())) > 50, key
    training = figure(report.html, "training")
    assert all(name in training for name in ("loss", "reward", "kl", "learning_rate"))
    assert "base pass@k" in figure(report.html, "accuracy-k") and "tuned maj@k" in figure(report.html, "accuracy-k")


def problem_scores(run_dir: Path) -> dict[str, float]:
    verdicts = [json.loads(line) for line in (run_dir / "verdicts.jsonl").read_text().splitlines()]
    per_problem: dict[str, list[bool]] = {}
    for verdict in verdicts:
        per_problem.setdefault(verdict["problem_id"], []).append(verdict["status"] == "correct")
    return {p: sum(outcomes) / len(outcomes) for p, outcomes in per_problem.items()}


def shared_accuracy(run_dir: Path, shared: set[str]) -> float:
    scores = problem_scores(run_dir)
    return sum(scores[p] for p in shared) / len(shared)


def comparison_row(html: str, run: str) -> dict[str, str]:
    row = re.search(rf'<tr data-run="{re.escape(run)}" data-vs="[^"]*">(.*?)</tr>', section(html, "comparison"), re.S)
    return dict(re.findall(r'<td class="(\w+)">(.*?)</td>', row.group(1)))


def test_comparison_covers_the_shared_problems(report, two_runs):
    ids = [{json.loads(line)["id"] for line in (d / "problems.jsonl").read_text().splitlines()} for d in two_runs]
    shared = ids[0] & ids[1]
    assert len(shared) == 30
    assert ("On gsm8k, tuned and base share 30 graded problem(s) (graded: 40 and 40): only those are compared."
            in section(report.html, "comparison"))
    row = comparison_row(report.html, "tuned")
    assert (row["vs"], row["shared"]) == ("base", "30")
    assert row["before"] == f"{100 * shared_accuracy(two_runs[0], shared):.1f}%"
    assert row["after"] == f"{100 * shared_accuracy(two_runs[1], shared):.1f}%"


def test_comparison_tests_the_change_on_the_problems_that_moved(report, two_runs):
    base, tuned = (problem_scores(d) for d in two_runs)
    shared = base.keys() & tuned.keys()
    better = sum(tuned[p] > base[p] for p in shared)
    worse = sum(tuned[p] < base[p] for p in shared)
    assert (better, worse) == (12, 9)  # the seeded fixture: both directions, so the test has something to count
    change = paired_change(*(load_run(d) for d in two_runs))
    assert (change.shared, change.better, change.worse, change.same) == (30, better, worse, 30 - better - worse)
    points = 100 * (shared_accuracy(two_runs[1], shared) - shared_accuracy(two_runs[0], shared))
    assert change.points == pytest.approx(points)
    assert change.p == pytest.approx(sign_test_p(better, worse), rel=1e-12)
    row = comparison_row(report.html, "tuned")
    assert [row[key] for key in ("points", "better", "worse", "same", "p")] == [
        f"{points:+.1f}", str(better), str(worse), str(30 - better - worse), p_value_text(sign_test_p(better, worse))]


@pytest.fixture(scope="module")
def quickstart(shared_data, tmp_path_factory):
    """A quickstart-shaped run directory (see report_rundir.make_quickstart_runs) and its report."""
    dirs = make_quickstart_runs(shared_data, tmp_path_factory.mktemp("quickstart") / "run", problems=40)
    return dirs, build_report(dirs)


def test_quickstart_comparison_pairs_each_stage_with_the_one_before_on_each_problem_set(quickstart):
    dirs, report = quickstart
    headlines = re.findall(r'<li data-suite="[^"]+" data-run="[^"]+">(.*?)</li>', report.html)
    expected = []
    for name in QUICKSTART_SETS:
        for (before, before_model), (after, after_model) in zip(QUICKSTART_EVALS, QUICKSTART_EVALS[1:]):
            old, new = (problem_scores(next(d for d in dirs if d.name == f"{stage}.{name}")) for stage in (before, after))
            assert old.keys() == new.keys() and len(old) == 40  # one problem set: every problem is shared
            better = sum(new[p] > old[p] for p in old)
            worse = sum(new[p] < old[p] for p in old)
            points = 100 * (sum(new.values()) - sum(old.values())) / 40
            expected.append(f"{after_model} vs {before_model} on {name}: {points:+.1f} points, {better} better, "
                            f"{worse} worse, {p_value_text(sign_test_p(better, worse))}")
    assert headlines == expected
    assert "share no graded problem" not in report.html and "Nothing to compare" not in report.html


def test_quickstart_report_and_terminal_table_agree(quickstart):
    from reasonloop.pipeline.commands import paired_changes

    dirs, report = quickstart
    run_dir = dirs[0].parent.parent
    timings = {stage: {"runs": {name: f"{stage}/{stage}.{name}" for name in QUICKSTART_SETS}}
               for stage, _ in QUICKSTART_EVALS}
    changes = paired_changes(run_dir, timings)
    for stage, row in changes.items():
        for name, change in row.items():
            shown = comparison_row(report.html, f"{stage}.{name}")
            assert shown["vs"] == f"{change['vs']}.{name}"
            assert [shown[key] for key in ("shared", "points", "better", "worse", "same", "p")] == [
                str(change["shared"]), f"{change['points']:+.1f}", str(change["better"]), str(change["worse"]),
                str(change["same"]), p_value_text(change["p"])]


def test_training_runs_get_their_own_section_without_notices(quickstart):
    dirs, report = quickstart
    assert report.notices == []
    assert "no metrics file" not in report.html
    training = section(report.html, "training")
    for name, steps, settings in (("sft/model", "800", "batch_size=24, learning_rate=0.005, lora=auto, lr_scheduler=cosine, max_steps=800"),
                                  ("round-2", "60", "batch_size=32, epochs=2, learning_rate=0.001, seed=1000"),
                                  ("grpo/model", "24", "batch_size=64, beta=0.04, learning_rate=0.0001")):
        row = summary_row(training, re.escape(name))
        assert f"<td class=\"\">{steps}</td>" in row and settings in row
        assert f'<tr data-run="{name}">' not in section(report.html, "summary")  # evaluations only there
    curves = figure(training, "training")
    assert all(f">{field}<" in curves for field in ("loss", "learning_rate", "reward", "kl"))
    assert [run["name"] for run in embedded_data(report.html)["runs"]] == [d.name for d in dirs[:6]]


def test_a_plot_with_nothing_to_show_is_not_drawn(quickstart):
    _, report = quickstart
    assert 'id="plot-accuracy-k"' in report.html and "<figure" not in plot_note(report.html, "accuracy-k")
    assert "one k only (k = 1)" in plot_note(report.html, "accuracy-k")
    drawn = re.findall(r'<figure class="plot[^"]*" id="plot-([\w-]+)">', report.html)
    assert drawn == ["training", "robustness", "perturbations", "accuracy-tokens", "accuracy-steps"]


def test_runs_with_no_shared_problems_say_so_in_one_line_and_render_the_rest(shared_data, tmp_path):
    gsm = make_run(shared_data, tmp_path / "gsm", problems=10, samples=2)
    symbolic = make_run(shared_data, tmp_path / "symbolic", problems=10, samples=2, start=5, suite="gsm-symbolic")
    far = make_run(shared_data, tmp_path / "far", problems=5, samples=2, start=100)  # gsm8k too, other problems
    report = build_report([gsm, symbolic, far])
    comparison = section(report.html, "comparison")
    assert re.findall(r"<p[^>]*>(.*?)</p>", comparison) == [
        "Nothing to compare: no two evaluation runs share a graded problem of the same problem set "
        "(gsm8k: gsm, far; gsm-symbolic: symbolic)."]
    assert "<table" not in comparison
    for name in ("summary", "plots", "traces"):
        assert section(report.html, name)
    assert len(embedded_data(report.html)["runs"]) == 3 and all(summary_row(report.html, n) for n in ("gsm", "far"))


def test_other_format_version_is_flagged_and_still_shown(shared_data, tmp_path):
    run_dir = make_run(shared_data, tmp_path / "old", problems=5, samples=2)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    write_manifest(run_dir, {**manifest, "format_version": 99, "reasonloop_version": "9.9.9"})
    report = build_report([run_dir])
    assert any("run format 99 (written by reasonloop 9.9.9)" in notice for notice in report.notices)
    assert '<li class="notice"><b>old</b>: ' in report.html and "run format 99" in report.html
    assert len(embedded_data(report.html)["runs"][0]["rows"]) == 10


def test_missing_metrics_give_a_partial_report(shared_data, tmp_path):
    run_dir = make_run(shared_data, tmp_path / "partial", problems=5, samples=2)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("accuracy", "pass_at_k", "robustness", "step_check"):
        del metrics[name]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    report = build_report([run_dir])
    assert any("accuracy" in notice and "pass_at_k" in notice for notice in report.notices)
    row = summary_row(report.html, "partial")
    assert row.count('class="missing"') == 3  # accuracy, pass@1 and the step check show a dash
    assert "partial maj@k" in figure(report.html, "accuracy-k")
    assert "No run has robustness.sets" in plot_note(report.html, "robustness")


def test_attempts_without_verdicts_are_shown_as_unverified(shared_data, tmp_path):
    run_dir = make_run(shared_data, tmp_path / "ungraded", problems=5, samples=2)
    lines = (run_dir / "verdicts.jsonl").read_text().splitlines()
    (run_dir / "verdicts.jsonl").write_text("\n".join(lines[3:]) + "\n")
    report = build_report([run_dir])
    assert "3 attempt(s) have no verdict: shown as unverified" in report.notices[-1]
    data = embedded_data(report.html)
    statuses = Counter(row[data["columns"].index("status")] for row in data["runs"][0]["rows"])
    assert statuses["unverified"] == 3 and sum(statuses.values()) == 10


def test_training_run_alone_reports_its_curves_and_no_traces(tmp_path):
    run_dir = tmp_path / "sft"
    write_manifest(run_dir, make_manifest(kind="train-sft", model="tiny-llama", config={"learning_rate": 0.01}))
    add_train_log(run_dir, steps=12)
    report = build_report([run_dir])
    assert report.notices == []
    assert "<svg" in figure(section(report.html, "training"), "training")
    assert "learning_rate=0.01" in summary_row(report.html, "sft")
    assert embedded_data(report.html)["runs"] == []
    assert 'id="summary"' not in report.html and 'id="traces"' not in report.html


def test_trees_are_attached_to_their_problem(shared_data, tmp_path):
    run_dir = make_run(shared_data, tmp_path / "search", problems=3, samples=2)
    first = json.loads((run_dir / "problems.jsonl").read_text().splitlines()[0])["id"]
    tree = {"text": "root", "children": [{"text": "step 1", "value": 0.7, "children": []}]}
    (run_dir / "trees.jsonl").write_text(json.dumps({"problem_id": first, "tree": tree}) + "\n"
                                         + json.dumps({"problem_id": "nope", "tree": {}}) + "\n")
    report = build_report([run_dir])
    assert embedded_data(report.html)["runs"][0]["trees"] == {"0": tree}
    assert any("trees.jsonl, line 2" in notice for notice in report.notices)


def test_not_a_run_directory_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RunFormatError, match="not a run directory"):
        build_report([tmp_path])


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`reasonloop report ARGS` in this process, through the CLI's own entry point."""
    from reasonloop.cli import main

    monkeypatch.setattr(sys, "argv", ["reasonloop", "report", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
        sys.exit(0)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_writes_the_report_and_fails_in_one_line(two_runs, tmp_path, monkeypatch, capsys):
    output = tmp_path / "out" / "report.html"
    code, out, err = run_cli(monkeypatch, capsys, *map(str, two_runs), "-o", str(output))
    assert code == 0, err
    assert output.read_text().startswith("<!DOCTYPE html>") and "wrote" in out
    code, out, err = run_cli(monkeypatch, capsys, str(tmp_path / "missing"), "-o", str(tmp_path / "x.html"))
    assert code == 1 and err.strip().count("\n") == 0
    assert "no such run directory" in err and not (tmp_path / "x.html").exists()


def test_pass_at_k_gets_the_coverage_fit_when_it_has_three_points_inside_0_1(tmp_path):
    from reasonloop.report.plots import accuracy_vs_k, coverage_curve

    law = {k: math.exp(-0.8 * k ** -0.2) for k in (1, 2, 4, 8, 16, 32, 64)}
    ks, fitted = coverage_curve(law)
    assert ks[0] == 1 and ks[-1] == pytest.approx(64)
    assert fitted[0] == pytest.approx(100 * law[1], rel=1e-6) and fitted[-1] == pytest.approx(100 * law[64], rel=1e-6)
    assert coverage_curve({1: 0.2, 2: 0.3}) is None and coverage_curve({1: 0.2, 2: 0.3, 4: 1.0}) is None
    sampled = RunData(name="sampled", path=tmp_path, metrics={"pass_at_k": {str(k): c for k, c in law.items()}})
    short = RunData(name="short", path=tmp_path, metrics={"pass_at_k": {"1": 0.2, "2": 0.3}})
    svg = accuracy_vs_k([sampled, short]).svg
    assert "sampled fit exp(a·k^b)" in svg and "short fit" not in svg
