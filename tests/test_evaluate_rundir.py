import json

import pytest

from reasonloop.evaluate.metrics import compute_metrics
from reasonloop.rundir import (
    MANIFEST_KEYS,
    REQUIRED_METRICS,
    RUN_FORMAT_VERSION,
    RunFormatError,
    make_manifest,
    read_run,
    write_run,
)
from reasonloop.records import Attempt, Problem, Verdict


def small_run(tmp_path, name="run"):
    problems = [Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1), meta={"steps": 1}) for i in range(3)]
    attempts, verdicts = [], []
    for p in problems:
        for j in range(2):
            attempts.append(Attempt(problem_id=p.id, prompt=p.question, completion=f"#### {p.answer}", sample_index=j, tokens=4))
            status = "correct" if (p.id, j) != ("p2", 1) else "incorrect"
            verdicts.append(Verdict(status=status, extracted=p.answer, reference=p.answer, problem_id=p.id, sample_index=j))
    metrics = compute_metrics(problems, attempts, verdicts, suite="toy", strategy="sample")
    manifest = make_manifest(suite="toy", model="m", model_fingerprint="abc", verifier_version="v1",
                             strategy="sample", sampling={"n": 2, "temperature": 0.7}, seed=0, config={"limit": 3})
    return write_run(tmp_path / name, manifest=manifest, problems=problems, attempts=attempts,
                     verdicts=verdicts, metrics=metrics)


def test_written_run_reads_back_with_every_contract_field(tmp_path):
    run = read_run(small_run(tmp_path), strict=True)
    assert run.warnings == []
    assert set(MANIFEST_KEYS) <= set(run.manifest) and run.manifest["format_version"] == RUN_FORMAT_VERSION
    assert run.manifest["complete"] is True and "torch" in run.manifest["packages"]
    assert set(REQUIRED_METRICS) <= set(run.metrics)
    assert run.metrics["accuracy"] == pytest.approx(5 / 6)
    assert (len(run.problems), len(run.attempts), len(run.verdicts)) == (3, 6, 6)
    traces = run.traces()
    assert [len(t.attempts) for t in traces] == [2, 2, 2]
    assert [v.status for v in traces[2].verdicts] == ["correct", "incorrect"]
    assert run.suite == "toy" and run.name == "run"


def test_run_from_another_format_version_is_refused_strictly_and_flagged_otherwise(tmp_path):
    path = small_run(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(format_version=0, reasonloop_version="0.0.1")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match=r"run format 0 \(written by reasonloop 0.0.1\).*reads format 1"):
        read_run(path, strict=True)
    run = read_run(path)
    assert len(run.warnings) == 1 and "run format 0" in run.warnings[0]
    assert len(run.verdicts) == 6  # still shows what can be shown


def test_missing_metric_is_named(tmp_path):
    path = small_run(tmp_path)
    metrics = json.loads((path / "metrics.json").read_text())
    del metrics["pass_at_k"], metrics["accuracy_ci95"]
    (path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunFormatError, match=r"metrics.json: missing metrics accuracy_ci95, pass_at_k"):
        read_run(path, strict=True)
    run = read_run(path)
    assert run.metrics["accuracy"] == pytest.approx(5 / 6)
    assert any("missing metrics accuracy_ci95, pass_at_k" in w for w in run.warnings)


def test_not_a_run_directory_and_bad_rows(tmp_path):
    with pytest.raises(RunFormatError, match="no such run directory"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFormatError, match=r"not a run directory \(no manifest.json\)"):
        read_run(tmp_path / "empty")
    path = small_run(tmp_path)
    with (path / "verdicts.jsonl").open("a") as handle:
        handle.write('{"status": "maybe"}\n')
    run = read_run(path)
    assert len(run.verdicts) == 6
    assert any("verdicts.jsonl" in w and "skipped 1 invalid rows" in w and "line 7" in w for w in run.warnings)
    with pytest.raises(Exception, match=r"verdicts.jsonl, line 7, field 'status'"):
        read_run(path, strict=True)


def test_training_run_with_log_and_no_records(tmp_path):
    path = tmp_path / "train"
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps(make_manifest(kind="train", model="tiny")))
    (path / "train_log.jsonl").write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\nnot json\n')
    run = read_run(path)
    assert [row["loss"] for row in run.train_log] == [2.5, 2.1]
    assert run.warnings == [f"{path / 'metrics.json'}: no metrics file", f"{path / 'train_log.jsonl'}, line 3: malformed JSON (Expecting value); line skipped"]
