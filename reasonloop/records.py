"""The data model: typed records every stage reads and writes.

Records are pydantic models stored as JSONL or Parquet. Reading validates every row
and reports bad ones with file, line (or row) and field; writing is atomic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Literal, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from reasonloop.atomic import atomic_write_bytes, atomic_write_text

VerdictStatus = Literal["correct", "incorrect", "no_answer", "timeout", "error"]
VERDICT_STATUSES: tuple[str, ...] = ("correct", "incorrect", "no_answer", "timeout", "error")


def content_hash(*parts: str, length: int = 16) -> str:
    """A stable short hex digest of the given strings (order matters)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


class Record(BaseModel):
    """Base for all records: strict about unknown fields, JSON-able dict fields.

    In tabular formats (Parquet, `datasets`) dict-valued fields are stored as JSON text,
    because their keys vary from row to row; they are parsed back on read.
    """

    model_config = ConfigDict(extra="forbid", frozen=False)
    json_fields: ClassVar[tuple[str, ...]] = ()  # fields kept as JSON text in tabular formats

    @model_validator(mode="before")
    @classmethod
    def _parse_json_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.json_fields:
                if isinstance(data.get(name), str):
                    try:
                        data = {**data, name: json.loads(data[name])}
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"field {name!r} holds text that is not JSON: {exc}") from exc
        return data

    def to_row(self) -> dict[str, Any]:
        """A flat dict for tabular storage (dict fields as JSON text)."""
        row = self.model_dump()
        for name in self.json_fields:
            row[name] = json.dumps(row[name], sort_keys=True, ensure_ascii=False)
        return row

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), ensure_ascii=False)


class Problem(Record):
    """A question with a reference final answer (a string) and an optional worked solution."""

    json_fields: ClassVar[tuple[str, ...]] = ("meta",)
    id: str = ""
    question: str
    answer: str
    solution: str | None = None
    source: str = ""
    meta: dict[str, Any] = {}

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is empty")
        return value

    @model_validator(mode="after")
    def _default_id(self) -> "Problem":
        if not self.id:
            self.id = content_hash(self.question, self.answer)
        return self


class SamplingRecord(BaseModel):
    """The sampling settings an attempt was drawn with."""

    model_config = ConfigDict(extra="allow")
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    calculator: bool = False  # `<<EXPR=` calls were answered by the calculator (models.calculator)

    @classmethod
    def of(cls, params: Any) -> "SamplingRecord":
        """The record of a `reasonloop.models.base.SamplingParams`."""
        return cls(**{name: getattr(params, name) for name in cls.model_fields})


class ToolCall(BaseModel):
    """One program a model wrote and the sandbox ran (program-aided and tool-integrated solving).

    `status` is the sandbox's (`ok`, `error`, `timeout`), except that a program that exits 0
    but prints nothing, or prints bytes that are not UTF-8, is an `error` here: its output
    cannot be an answer. A python block that was missing or never closed is an `error` call
    with empty `code`. `output` is what the program printed (cut to `TOOL_OUTPUT_CHARS`).
    """

    model_config = ConfigDict(extra="forbid")
    code: str
    output: str = ""
    status: Literal["ok", "error", "timeout"]
    reason: str = ""
    seconds: float = 0.0


TOOL_OUTPUT_CHARS = 2000


class Attempt(Record):
    """One completion a model produced for one problem.

    `tool_calls`: the programs run while producing it (`pal`, `tir`), in order; None for
    strategies that run none, and in attempts written before the field existed."""

    json_fields: ClassVar[tuple[str, ...]] = ("sampling", "tool_calls")
    problem_id: str
    prompt: str
    completion: str
    model: str = ""
    sampling: SamplingRecord = SamplingRecord()
    sample_index: int = 0
    tokens: int = 0
    finish_reason: str | None = None
    logprob: float | None = None
    steps: list[str] | None = None
    error: str | None = None
    reward: float | None = None  # a reward model's score, where a search strategy ranked by one
    tool_calls: list[ToolCall] | None = None


class Verdict(Record):
    """The verifier's decision on one completion. Never a bare bool.

    `rule` says how `extracted` was found: `final-form` (a marker such as `\\boxed{}` or
    `#### N`, named in `marker`) or `last-number` (the opt-in fallback); None when no
    answer was extracted, and in verdicts written before the field existed.
    """

    status: VerdictStatus
    extracted: str | None = None
    reference: str | None = None
    reason: str = ""
    verifier: str = ""
    rule: Literal["final-form", "last-number"] | None = None
    marker: str | None = None
    problem_id: str | None = None
    sample_index: int | None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class Trace(Record):
    """One problem with all its attempts and their verdicts (what the trace viewer shows)."""

    json_fields: ClassVar[tuple[str, ...]] = ("tree",)
    problem: Problem
    attempts: list[Attempt] = []
    verdicts: list[Verdict] = []
    tree: dict[str, Any] | None = None


R = TypeVar("R", bound=Record)


# ---------------------------------------------------------------- reading & writing


class RecordError(ValueError):
    """A bad row: names the file, the line (or row) and the field."""

    def __init__(
        self, path: str | Path, line: int | None, field_name: str | None, message: str, unit: str = "line"
    ):
        self.path, self.line, self.field, self.message = str(path), line, field_name, message
        where = f"{self.path}"
        if line is not None:
            where += f", {unit} {line}"
        if field_name:
            where += f", field '{field_name}'"
        super().__init__(f"{where}: {message}")


@dataclass
class ReadResult:
    """Valid records plus the rows skipped with `skip_invalid=True` (never a silent drop)."""

    records: list = field(default_factory=list)
    skipped: list[RecordError] = field(default_factory=list)


def error_from_validation(
    path: str | Path, line: int | None, exc: ValidationError, unit: str = "line"
) -> RecordError:
    first = exc.errors()[0]
    field_name = ".".join(str(p) for p in first["loc"]) or None
    return RecordError(path, line, field_name, first["msg"], unit)


def validate_row(cls: type[R], row: Any, path: str | Path, line: int | None, unit: str = "line") -> R:
    if not isinstance(row, dict):
        raise RecordError(path, line, None, f"expected a JSON object, got {type(row).__name__}", unit)
    try:
        return cls.model_validate(row)
    except ValidationError as exc:
        raise error_from_validation(path, line, exc, unit) from None


def iter_jsonl_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """Yield (line number, parsed JSON or RecordError) for each non-blank line."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, RecordError(path, number, None, f"malformed JSON ({exc.msg} at column {exc.colno})")


def read_table_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for bad files
        raise RecordError(path, None, None, f"not a readable Parquet file: {exc}") from None


def check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise RecordError(path, None, None, "no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise RecordError(path, None, None, "file is empty")
    return path


def read_records(path: str | Path, cls: type[R], *, skip_invalid: bool = False) -> ReadResult:
    """Read and validate records from a .jsonl or .parquet file.

    A bad row raises `RecordError` naming file, line/row and field, unless
    `skip_invalid`, in which case it is listed in `ReadResult.skipped`.
    """
    path = check_path(path)
    unit = "row" if path.suffix == ".parquet" else "line"
    return collect_rows(
        iter_rows(path), lambda line, row: validate_row(cls, row, path, line, unit), ReadResult(),
        skip_invalid=skip_invalid, where=path,
    )


def collect_rows(
    rows: Iterable[tuple[int, Any]],
    build: Callable[[int, Any], R],
    result: ReadResult,
    *,
    skip_invalid: bool,
    where: str | Path,
    limit: int | None = None,
    on_row: Callable[[Any], None] | None = None,
) -> ReadResult:
    """Build a record from each numbered row; bad rows raise, or are listed with `skip_invalid`."""
    for line, row in rows:
        if limit is not None and len(result.records) >= limit:
            break
        if on_row:
            on_row(row)
        try:
            if isinstance(row, RecordError):
                raise row
            result.records.append(build(line, row))
        except RecordError as err:
            if not skip_invalid:
                raise
            result.skipped.append(err)
    if not result.records and not result.skipped:
        raise RecordError(where, None, None, "holds no records")
    return result


def iter_rows(path: Path) -> Iterable[tuple[int, Any]]:
    if path.suffix == ".parquet":
        return enumerate(read_table_rows(path), start=1)
    return iter_jsonl_rows(path)


def load(path: str | Path, cls: type[R]) -> list[R]:
    """Read records, refusing any bad row."""
    return read_records(path, cls).records


def write_records(path: str | Path, records: Sequence[Record]) -> Path:
    """Write records atomically as JSONL or Parquet (chosen by suffix)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        import io

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([r.to_row() for r in records]), buffer)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_text(path, "".join(r.to_json() + "\n" for r in records))
    return path


def to_dataset(records: Sequence[Record]):
    """Records -> Hugging Face `datasets.Dataset` (dict fields as JSON text)."""
    from datasets import Dataset

    return Dataset.from_list([r.to_row() for r in records])


def from_dataset(dataset, cls: type[R], *, source_name: str = "<dataset>") -> list[R]:
    """Hugging Face `datasets.Dataset` -> validated records."""
    return [validate_row(cls, dict(row), source_name, index, "row") for index, row in enumerate(dataset, start=1)]
