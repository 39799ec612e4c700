import json
import os

import pytest

from reasonloop.atomic import atomic_write_text
from reasonloop.records import (
    Attempt, Problem, RecordError, Verdict, from_dataset, read_records, to_dataset, write_records,
)


def problems():
    return [
        Problem(question="What is 2 + 3?", answer="5", source="test", meta={"steps": 1}),
        Problem(question="Half of 10?", answer="5", solution="10 / 2 = 5", meta={"vars": {"a": 10}}),
    ]


def test_problem_id_is_stable_content_hash():
    a = Problem(question="What is 2 + 3?", answer="5")
    b = Problem(question="What is 2 + 3?", answer="5", source="elsewhere")
    c = Problem(question="What is 2 + 4?", answer="6")
    assert a.id == b.id and len(a.id) == 16
    assert a.id != c.id
    assert Problem(id="given", question="q", answer="1").id == "given"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip(tmp_path, suffix):
    path = write_records(tmp_path / f"p{suffix}", problems())
    back = read_records(path, Problem).records
    assert [p.model_dump() for p in back] == [p.model_dump() for p in problems()]


def test_attempt_and_verdict_round_trip_parquet(tmp_path):
    attempt = Attempt(problem_id="x", prompt="Q", completion="A", sampling={"temperature": 0.7, "seed": 3})
    verdict = Verdict(status="timeout", reason="math-verify exceeded 5s", verifier="rl-1")
    write_records(tmp_path / "a.parquet", [attempt])
    write_records(tmp_path / "v.jsonl", [verdict])
    assert read_records(tmp_path / "a.parquet", Attempt).records[0].sampling.temperature == 0.7
    assert read_records(tmp_path / "v.jsonl", Verdict).records[0].status == "timeout"


def test_dataset_round_trip():
    dataset = to_dataset(problems())
    assert dataset.num_rows == 2 and "question" in dataset.column_names
    back = from_dataset(dataset, Problem)
    assert back[1].meta == {"vars": {"a": 10}}


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"question": "a", "answer": "1"}', '{"question": "b", '])
    with pytest.raises(RecordError) as info:
        read_records(path, Problem)
    assert "bad.jsonl, line 2" in str(info.value) and "malformed JSON" in str(info.value)


def test_missing_field_and_wrong_type_name_the_field(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ['{"question": "a", "answer": "1"}', '{"question": "b"}'])
    with pytest.raises(RecordError, match=r"line 2, field 'answer': Field required"):
        read_records(path, Problem)
    path = write_lines(tmp_path / "t.jsonl", ['{"question": "a", "answer": ["1"]}'])
    with pytest.raises(RecordError, match=r"line 1, field 'answer'"):
        read_records(path, Problem)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RecordError, match="empty"):
        read_records(tmp_path / "empty.jsonl", Problem)
    with pytest.raises(RecordError, match="no such file"):
        read_records(tmp_path / "nope.jsonl", Problem)


def test_parquet_with_wrong_schema_names_row_and_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["a", "b"], "solution": ["x", "y"]}), tmp_path / "w.parquet")
    with pytest.raises(RecordError, match=r"w.parquet, row 1, field 'answer'"):
        read_records(tmp_path / "w.parquet", Problem)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(RecordError, match="not a readable Parquet"):
        read_records(tmp_path / "junk.parquet", Problem)


def test_skip_invalid_reports_every_skipped_row(tmp_path):
    path = write_lines(tmp_path / "mixed.jsonl", [
        '{"question": "a", "answer": "1"}', "{oops", '{"question": "c"}', '{"question": "d", "answer": "4"}',
    ])
    result = read_records(path, Problem, skip_invalid=True)
    assert [p.question for p in result.records] == ["a", "d"]
    assert [e.line for e in result.skipped] == [2, 3]


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    write_records(path, problems())
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        write_records(path, problems()[:1])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind
    monkeypatch.undo()
    atomic_write_text(path, json.dumps({"ok": 1}))
    assert json.loads(path.read_text()) == {"ok": 1}
