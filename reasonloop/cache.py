"""Content-addressed, resumable per-item results.

Each item's key hashes everything that determines its result (input record, stage
config, model fingerprint, verifier version, stage code version). Results are appended
in *shards*: small files written atomically, each with a checksum of its body, so a run
killed at any moment leaves only whole shards behind and resumes from them. A shard whose
checksum does not match is moved aside, reported and its items recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

from reasonloop.atomic import atomic_write_bytes
from reasonloop.errors import ReasonloopError

T = TypeVar("T")
SHARD_GLOB = "shard-*.jsonl"


def item_key(*parts: Any) -> str:
    """sha256 over the canonical JSON of the parts (records as dicts, configs, versions)."""
    canonical = json.dumps([jsonable(p) for p in parts], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return value


class CacheWriteError(ReasonloopError):
    """A shard could not be written (e.g. disk full); earlier shards are intact."""


@dataclass
class ItemCache:
    """A folder of checksummed shards mapping item keys to JSON results."""

    root: Path
    corrupted: list[str] = field(default_factory=list)
    _index: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def index(self) -> dict[str, Any]:
        if self._index is None:
            self._index = self._load()
        return self._index

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: str, default: Any = None) -> Any:
        return self.index.get(key, default)

    def put_many(self, results: dict[str, Any]) -> Path | None:
        """Write one shard holding `results` atomically; they are then visible to `get`."""
        if not results:
            return None
        body = "".join(json.dumps({"key": k, "value": v}, ensure_ascii=False) + "\n" for k, v in results.items())
        header = json.dumps({"checksum": sha256_text(body), "count": len(results)}) + "\n"
        path = self.root / f"shard-{time.time_ns():020d}-{os.getpid()}.jsonl"
        try:
            atomic_write_bytes(path, (header + body).encode("utf-8"))
        except OSError as exc:
            raise CacheWriteError(
                f"could not write cache shard {path} ({exc.strerror or exc}); "
                f"the {len(results)} results of this batch will be recomputed on resume"
            ) from exc
        self.index.update(results)
        return path

    def shards(self) -> list[Path]:
        return sorted(self.root.glob(SHARD_GLOB)) if self.root.exists() else []

    def quarantined(self) -> list[Path]:
        folder = self.root / "corrupt"
        return sorted(folder.iterdir()) if folder.exists() else []

    def stats(self) -> dict[str, Any]:
        shards = self.shards()
        return {
            "path": str(self.root),
            "items": len(self),
            "shards": len(shards),
            "bytes": sum(p.stat().st_size for p in shards),
            "corrupt": len(self.quarantined()),
        }

    def compact(self, keep: Callable[[str], bool] | None = None) -> dict[str, int]:
        """Rewrite all shards as one (dropping entries `keep` rejects) and purge quarantined files.

        The merged shard is written before the old ones are removed, so a crash in between
        leaves duplicates (harmless: same key, same value), never a loss.
        """
        old_shards, index = self.shards(), dict(self.index)
        kept = {k: v for k, v in index.items() if keep is None or keep(k)}
        self._index = {}
        merged = self.put_many(kept)
        for path in old_shards:
            if path != merged:
                path.unlink(missing_ok=True)
        for path in [*self.quarantined(), *self.root.glob(".shard-*.tmp")]:  # temp files of killed writes
            path.unlink(missing_ok=True)
        return {"kept": len(kept), "dropped": len(index) - len(kept), "shards_removed": len(old_shards)}

    def _load(self) -> dict[str, Any]:
        index: dict[str, Any] = {}
        for path in self.shards():
            entries = read_shard(path)
            if entries is None:
                self.corrupted.append(quarantine(path))
                continue
            index.update(entries)
        return index


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_shard(path: Path) -> dict[str, Any] | None:
    """The shard's entries, or None when its checksum or JSON is broken."""
    try:
        header_line, _, body = path.read_text(encoding="utf-8").partition("\n")
        header = json.loads(header_line)
        if header.get("checksum") != sha256_text(body):
            return None
        entries = [json.loads(line) for line in body.splitlines()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return {entry["key"]: entry["value"] for entry in entries}


def quarantine(path: Path) -> str:
    target = path.parent / "corrupt" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return f"{path.name}: checksum mismatch, moved to {target} and its items will be recomputed"


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BatchRunner(Protocol):
    """Runs `fn` over batches, yielding (batch index, results) as batches finish (any order).

    `reasonloop.pipeline.executors` provides inline, process-pool and Ray runners.
    """

    def map_unordered(self, fn: Callable[[Any], list[Any]], batches: Sequence[Any]) -> Iterator[tuple[int, list[Any]]]: ...


class InlineRunner:
    """Computes batches one after another in this process."""

    def map_unordered(self, fn: Callable[[Any], list[Any]], batches: Sequence[Any]) -> Iterator[tuple[int, list[Any]]]:
        for index, batch in enumerate(batches):
            yield index, fn(batch)


def missing_chunks(keys: Sequence[str], cache: ItemCache, batch_size: int) -> list[list[int]]:
    """Indices of uncached items, grouped by fixed chunks of the distinct keys.

    Chunk boundaries depend only on `keys`, never on what is cached, so a batch recomputed
    after an interruption holds exactly the items it held in an uninterrupted run (batched
    sampling, whose output depends on the batch, then gives the same bytes).
    """
    first_index = {key: i for i, key in reversed(list(enumerate(keys)))}
    distinct = sorted(first_index.values())
    chunks = ([i for i in chunk if keys[i] not in cache] for chunk in batched(distinct, batch_size))
    return [chunk for chunk in chunks if chunk]


def map_cached(
    items: Sequence[T],
    keys: Sequence[str],
    compute: Callable[[Sequence[T]], list[Any]],
    cache: ItemCache,
    *,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    runner: BatchRunner | None = None,
) -> list[Any]:
    """Results for `items` in order, computing only the ones whose key is not cached.

    Missing items are computed in batches (by `runner`, inline by default); each finished
    batch is written as one shard at once, so an interrupted run loses at most the
    batches in flight. `compute` must be picklable for process-pool and Ray runners.
    """
    if len(items) != len(keys):
        raise ValueError(f"{len(items)} items but {len(keys)} keys")
    chunks = missing_chunks(keys, cache, batch_size)
    batches = [[items[i] for i in chunk] for chunk in chunks]
    for index, values in (runner or InlineRunner()).map_unordered(compute, batches):
        chunk = chunks[index]
        if len(values) != len(chunk):
            raise ValueError(f"compute returned {len(values)} results for {len(chunk)} items")
        cache.put_many({keys[i]: v for i, v in zip(chunk, values)})
        if on_batch:
            on_batch(len(chunk))
    return [cache.get(key) for key in keys]
