"""`reasonloop model tiny` and `reasonloop serve` from the command line."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from reasonloop.cli import app
from reasonloop.errors import ReasonloopError


def test_model_tiny_builds_a_loadable_model_from_a_jsonl_corpus(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    corpus = tmp_path / "problems.jsonl"
    rows = [{"question": f"Tom has {i} pens and buys {i + 1} more.", "answer": str(2 * i + 1)} for i in range(50)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["model", "tiny", str(tmp_path / "m"), "--corpus", str(corpus), "--field", "question,answer",
                                      "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--vocab-size", "300"])
    assert result.exit_code == 0, result.output
    assert "parameters saved to" in result.output
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    assert len(AutoTokenizer.from_pretrained(tmp_path / "m")) <= 300


def test_model_tiny_names_the_bad_corpus_line(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"question": "ok"}\n{"text": "no question field"}\n')
    result = CliRunner().invoke(app, ["model", "tiny", str(tmp_path / "m"), "--corpus", str(corpus)])
    assert isinstance(result.exception, ReasonloopError)
    assert f"{corpus}:2" in str(result.exception) and "question" in str(result.exception)
    assert not (tmp_path / "m").exists()


def test_serve_a_missing_model_is_one_line_and_exit_1(tmp_path):
    done = subprocess.run([sys.executable, "-m", "reasonloop.cli", "serve", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: model path {tmp_path / 'missing'} does not exist"
