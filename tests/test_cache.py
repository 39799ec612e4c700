import errno

import pytest

from reasonloop.cache import CacheWriteError, ItemCache, item_key, map_cached
from reasonloop.records import Problem


def square_all(calls):
    def compute(batch):
        calls.append(list(batch))
        return [x * x for x in batch]

    return compute


def test_item_key_depends_on_every_part():
    problem = Problem(question="1+1?", answer="2")
    base = item_key(problem, {"temperature": 0.7}, "model-a", "verify-1", "stage-1")
    assert base == item_key(problem, {"temperature": 0.7}, "model-a", "verify-1", "stage-1")
    assert base != item_key(problem, {"temperature": 0.8}, "model-a", "verify-1", "stage-1")
    assert base != item_key(problem, {"temperature": 0.7}, "model-b", "verify-1", "stage-1")


def test_map_cached_computes_only_missing_items(tmp_path):
    calls = []
    items = list(range(10))
    keys = [item_key(i) for i in items]
    assert map_cached(items, keys, square_all(calls), ItemCache(tmp_path), batch_size=4) == [i * i for i in items]
    assert [len(c) for c in calls] == [4, 4, 2]
    calls.clear()
    again = map_cached(items + [10], keys + [item_key(10)], square_all(calls), ItemCache(tmp_path))
    assert again[-1] == 100 and calls == [[10]]


def test_corrupted_shard_is_reported_and_recomputed(tmp_path):
    items = [1, 2, 3]
    keys = [item_key(i) for i in items]
    map_cached(items, keys, square_all([]), ItemCache(tmp_path), batch_size=2)
    shard = ItemCache(tmp_path).shards()[0]
    shard.write_text(shard.read_text().replace("1", "7"))
    cache, calls = ItemCache(tmp_path), []
    assert map_cached(items, keys, square_all(calls), cache) == [1, 4, 9]
    assert calls == [[1, 2]] and "checksum mismatch" in cache.corrupted[0]
    assert (tmp_path / "corrupt" / shard.name).exists()


def test_full_disk_during_shard_write_loses_nothing_written_before(tmp_path, monkeypatch):
    items = [1, 2, 3, 4]
    keys = [item_key(i) for i in items]
    cache = ItemCache(tmp_path)
    real_write = __import__("reasonloop.atomic", fromlist=["x"]).atomic_write_bytes
    writes = []

    def flaky_write(path, data):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr("reasonloop.cache.atomic_write_bytes", flaky_write)
    with pytest.raises(CacheWriteError, match="No space left.*2 results of this batch will be recomputed"):
        map_cached(items, keys, square_all([]), cache, batch_size=2)
    monkeypatch.undo()
    calls = []
    assert map_cached(items, keys, square_all(calls), ItemCache(tmp_path), batch_size=2) == [1, 4, 9, 16]
    assert calls == [[3, 4]]


def test_compact_merges_shards_keeps_values_and_drops_garbage(tmp_path):
    items = list(range(10))
    keys = [item_key(i) for i in items]
    map_cached(items, keys, square_all([]), ItemCache(tmp_path), batch_size=3)
    (tmp_path / ".shard-123.jsonl.abc.tmp").write_text("half a shard")  # left by a kill during a write
    shard = ItemCache(tmp_path).shards()[0]
    shard.write_text(shard.read_text().replace("4", "5"))
    cache = ItemCache(tmp_path)
    assert len(cache) == 7 and cache.stats()["corrupt"] == 1
    result = cache.compact(keep=lambda key: key != keys[9])
    assert result == {"kept": 6, "dropped": 1, "shards_removed": 3}
    after = ItemCache(tmp_path)
    assert after.stats() | {"bytes": 0} == {"path": str(tmp_path), "items": 6, "shards": 1, "bytes": 0, "corrupt": 0}
    assert {k: after.get(k) for k in keys[3:9]} == {item_key(i): i * i for i in range(3, 9)}
    assert not list(tmp_path.glob(".shard-*"))
