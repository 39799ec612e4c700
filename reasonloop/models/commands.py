"""`reasonloop serve` and `reasonloop model ...` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

model_app = typer.Typer(help="Build and try models.", no_args_is_help=True)


def serve(
    model: str = typer.Argument(..., help="Model directory, .gguf file, Hub id (cached), or vllm:ID."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    name: Optional[str] = typer.Option(None, help="Model id the server reports (default: the directory or file name)."),
    backend: str = typer.Option("auto", help="auto, hf or vllm."),
    batch_size: int = typer.Option(32, help="Rows per decoding batch (hf backend)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda (hf backend)."),
) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from reasonloop.models.server import serve as run_server

    options = {"batch_size": batch_size, "device": device} if backend in ("auto", "hf") and not model.startswith("vllm:") else {}
    run_server(model, host=host, port=port, name=name, backend=backend, **options)


@model_app.command("tiny")
def tiny(
    out_dir: Path = typer.Argument(..., help="Where to save the model directory."),
    corpus: Path = typer.Option(..., help="Text corpus for the tokenizer: a .txt file (one text per line) or a JSONL file."),
    field: str = typer.Option("question", help="JSONL field(s) to read, comma-separated (e.g. question,solution)."),
    vocab_size: int = typer.Option(512, help="Tokenizer vocabulary size."),
    hidden_size: int = typer.Option(128),
    num_layers: int = typer.Option(4),
    num_heads: int = typer.Option(4),
    intermediate_size: int = typer.Option(384),
    max_positions: int = typer.Option(512),
    seed: int = typer.Option(0),
) -> None:
    """Create an untrained tiny Llama (about 1M parameters) with a tokenizer trained on CORPUS."""
    from reasonloop.models.tiny import TinyConfig, count_parameters, create_tiny_model

    config = TinyConfig(hidden_size, num_layers, num_heads, intermediate_size, max_positions)
    path = create_tiny_model(out_dir, read_corpus(corpus, field.split(",")), config, vocab_size=vocab_size, seed=seed)
    from transformers import AutoModelForCausalLM

    params = count_parameters(AutoModelForCausalLM.from_pretrained(path))
    typer.echo(f"tiny model with {params:,} parameters saved to {path}")


def read_corpus(path: Path, fields: list[str]) -> list[str]:
    from reasonloop.errors import ReasonloopError

    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix != ".jsonl":
        return [line for line in lines if line.strip()]
    texts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            texts.append("\n".join(str(row[f]) for f in fields))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReasonloopError(f"{path}:{number}: cannot read field(s) {','.join(fields)}: {exc}") from exc
    return texts


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(model_app, name="model")
