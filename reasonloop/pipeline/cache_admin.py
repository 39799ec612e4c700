"""Listing and cleaning the result cache (`reasonloop cache ls|gc`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from reasonloop.cache import ItemCache
from reasonloop.errors import ReasonloopError
from reasonloop.pipeline.engine import CACHE_KEYS, default_cache_dir


def namespaces(cache_dir: str | Path | None) -> list[tuple[str, ItemCache]]:
    root = Path(cache_dir or default_cache_dir())
    if not root.is_dir():
        return []
    return [(path.name, ItemCache(path)) for path in sorted(root.iterdir()) if path.is_dir()]


def cache_stats(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    return [{"namespace": name, **cache.stats()} for name, cache in namespaces(cache_dir)]


def keys_used_by(run_dirs: Sequence[str | Path]) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for run_dir in run_dirs:
        path = Path(run_dir) / CACHE_KEYS
        if not path.is_file():
            raise ReasonloopError(f"{run_dir}: not a pipeline run directory (no {CACHE_KEYS}); nothing was removed")
        try:
            for namespace, keys in json.loads(path.read_text()).items():
                used.setdefault(namespace, set()).update(keys)
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ReasonloopError(f"{path}: unreadable ({exc}); nothing was removed") from None
    return used


def collect_garbage(cache_dir: str | Path | None = None, keep_runs: Sequence[str | Path] = ()) -> list[str]:
    """Compact every namespace; with `keep_runs`, drop the items none of those runs used."""
    used = keys_used_by(keep_runs) if keep_runs else None
    lines = []
    for name, cache in namespaces(cache_dir):
        keep = (lambda key, keys=used.get(name, set()): key in keys) if used is not None else None
        result = cache.compact(keep)
        lines.append(f"{name}: kept {result['kept']} items, dropped {result['dropped']}, "
                     f"merged {result['shards_removed']} shards into 1" + (", removed corrupt shards" if cache.corrupted else ""))
    return lines or [f"cache {cache_dir or default_cache_dir()} is empty"]
