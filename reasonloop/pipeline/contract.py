"""The stage contract: what a stage kind is, what it gets and what it leaves behind.

A stage kind is a pydantic `StageConfig` subclass (its fields are the recipe keys)
registered with `@register_stage("kind")`. Its `run(ctx, inputs, out_dir, seed)` gets a
`RunContext`, the `StageOutput`s of the stages it names, a directory and a seed, and
returns a `StageOutput`. The recipe loader, the runner and the stage modules all import
this module, and it imports none of them.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field

from reasonloop.cache import ItemCache
from reasonloop.errors import ReasonloopError

BASE_MODEL = "base"  # the reference that means "the recipe's `model`"
RUN_PREFIX = "run:"  # a path inside the run directory, as stored in stage.json


class RecipeError(ReasonloopError):
    """A recipe that cannot run: names the stage, the key and what is allowed."""


class StageConfig(BaseModel):
    """Fields every stage has. Subclasses add their settings and implement `run`."""

    model_config = ConfigDict(extra="forbid")
    refs: ClassVar[dict[str, tuple[str, ...]]] = {}  # field -> output kinds it may name
    produces: ClassVar[str] = ""  # the kind of output: problems, model, attempts, verdicts, eval, report
    version: ClassVar[str] = "1"  # bump when the stage's results change for the same inputs
    itemized: ClassVar[bool] = False  # cached per item (else as a whole)

    name: str = Field(description="Unique stage name; other stages refer to it.")
    kind: str = Field(description="Which stage this is (see STAGE_KINDS).")
    seed: int | None = Field(None, description="Seed for this stage; default: the recipe's seed.")

    def references(self) -> dict[str, list[str]]:
        """field -> stage names it refers to (a ref field holds a name or a list of names)."""
        found = {}
        for field_name in self.refs:
            value = getattr(self, field_name)
            if value:
                found[field_name] = [value] if isinstance(value, str) else list(value)
        return found

    def preflight(self) -> None:
        """Checks that need heavy imports (trainer settings): run before the first stage starts."""

    def cache_settings(self) -> dict[str, Any]:
        """What determines the stage's results besides its inputs (for cache keys)."""
        return self.model_dump(exclude={"name", *self.refs})

    def run(self, ctx: RunContext, inputs: dict[str, Any], out_dir: Path, seed: int) -> StageOutput:
        raise NotImplementedError(f"stage kind {self.kind!r} has no run method")


STAGE_KINDS: dict[str, type[StageConfig]] = {}


def register_stage(kind: str) -> Callable[[type[StageConfig]], type[StageConfig]]:
    def decorate(cls: type[StageConfig]) -> type[StageConfig]:
        cls.model_fields["kind"].default = kind
        cls.model_rebuild(force=True)
        STAGE_KINDS[kind] = cls
        return cls

    return decorate


def unknown(what: str, value: Any, allowed: list[str], where: str = "") -> str:
    """"unknown key 'temprature' in stages[1]; did you mean 'temperature'? allowed: ..." """
    close = difflib.get_close_matches(str(value), allowed, n=1)
    place = f" in {where}" if where else ""
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown {what} {value!r}{place}{hint} allowed: {', '.join(allowed)}"


def settings_object(cls: type, values: dict[str, Any], where: str) -> Any:
    """`cls(**values)` for a settings dataclass, naming an unknown key and the allowed ones
    (also inside nested settings, e.g. `sft:` within self-training settings)."""
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise RecipeError(unknown("setting", key, list(known), f"stage {where}"))
        nested = known[key].default_factory if callable(known[key].default_factory) else None
        if isinstance(value, dict) and nested is not None and is_dataclass(nested):
            settings_object(nested, value, f"{where}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"stage {where}: {exc}") from None


@dataclass
class StageOutput:
    """What a stage left behind: a file or directory of some kind, and its content fingerprint."""

    kind: str  # problems | model | attempts | verdicts | eval | report
    path: str
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, run_dir: Path) -> dict[str, Any]:
        """Paths inside the run directory are stored relative to it, so a run directory can move."""
        data = asdict(self)
        data["path"] = os.path.relpath(self.path, run_dir)
        data["meta"] = {k: relative_in(v, run_dir) for k, v in self.meta.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], run_dir: Path) -> "StageOutput":
        meta = {k: v.replace(RUN_PREFIX, f"{run_dir}/", 1) if isinstance(v, str) and v.startswith(RUN_PREFIX) else v
                for k, v in data.get("meta", {}).items()}
        return cls(**{**data, "path": str(run_dir / data["path"]), "meta": meta})


def relative_in(value: Any, run_dir: Path) -> Any:
    if isinstance(value, str) and value.startswith(f"{run_dir}/"):
        return RUN_PREFIX + os.path.relpath(value, run_dir)
    return value


def fingerprint_path(path: str | Path) -> str:
    """sha256 over a file, or over a directory's file names and contents (sorted).

    Files over 256 MiB are identified by name, size and mtime, so big base models are not
    read in full on every run.
    """
    path, digest = Path(path), hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        stat = file.stat()
        if stat.st_size > 256 * 2**20:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            continue
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


@dataclass
class RunContext:
    """What stages share during a run."""

    recipe: BaseModel  # a `pipeline.recipe.Recipe` (not imported: recipe.py imports this module)
    run_dir: Path
    cache_dir: Path
    executor: Any  # reasonloop.pipeline.executors.Executor
    progress: Callable[[str, int, int], Callable[[int], None]]  # (label, total, done already) -> advance(n)
    log: Callable[[str], None] = print
    round: int = 0  # 1..R inside a loop, 0 outside
    used_keys: dict[str, set[str]] = field(default_factory=dict)  # namespace -> keys this run read or wrote
    stage_keys: dict[str, set[str]] = field(default_factory=dict)  # the same, for the stage now running
    corrupted: list[str] = field(default_factory=list)

    def cache(self, namespace: str, keys: Sequence[str] = ()) -> ItemCache:
        self.use_keys({namespace: keys})
        self.stage_keys.setdefault(namespace, set()).update(keys)
        return ItemCache(self.cache_dir / namespace)

    def use_keys(self, keys: dict[str, Sequence[str]]) -> None:
        for namespace, some in keys.items():
            self.used_keys.setdefault(namespace, set()).update(some)

    def report_corruption(self, cache: ItemCache) -> None:
        """Say which shards failed their checksum (their items were recomputed)."""
        for line in cache.corrupted:
            self.log(f"cache: {line}")
            self.corrupted.append(line)


__all__ = [
    "BASE_MODEL",
    "RecipeError",
    "RunContext",
    "STAGE_KINDS",
    "StageConfig",
    "StageOutput",
    "fingerprint_path",
    "register_stage",
    "settings_object",
    "unknown",
]
