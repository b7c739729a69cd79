"""The state service instances share, against real servers: the key store by URL, rate limits in Redis, the
feature update journal as a Redis stream; and the rate-limit file the workers of one machine share. The fleet
itself (two ``bentoml serve``) is tests/service/test_fleet.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import closing

import pytest
import redis

from mlops_core.api_keys import KeyStore, verify
from mlops_core.db import WriterLock
from mlops_core.features import FeatureStoreError, SharedUpdateJournal
from mlops_core.settings import Settings
from services.guard import (
    KEY_REFRESH_SECONDS,
    KeyCache,
    RateLimits,
    RateLimitStoreUnavailable,
    SharedRateLimits,
)
from tests.servers import postgres_cluster, redis_server

RELEASED_SCHEMA = (
    "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL, scope TEXT NOT NULL, "
    "rate_limit INTEGER, created_at TEXT NOT NULL, revoked_at TEXT)"
)


def test_a_key_file_of_the_released_schema_keeps_working(tmp_path) -> None:
    path = tmp_path / "keys.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(RELEASED_SCHEMA)
        db.execute(
            "INSERT INTO api_keys VALUES ('abc', 'old', "
            "'3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b3f5b', 'predict', 5, '2026-01-01', NULL)"
        )
    store = KeyStore(path)
    assert [record.name for record in store.list()] == ["old"] and store.active()["abc"].rate_limit == 5
    key_id, key = store.create("new")
    assert verify(key, store.active()) == key_id
    assert store.revoke("abc") and not store.revoke("abc") and "abc" not in store.active()


def test_the_version_of_a_store_moves_with_every_create_and_revoke(tmp_path) -> None:
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    versions = [store.version()]
    key_id, _ = store.create("a")
    versions.append(store.version())
    store.revoke(key_id)
    versions.append(store.version())
    assert len(set(versions)) == 3


def test_an_unreadable_key_store_keeps_the_keys_read_before(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    key_id, key = store.create("a")
    cache = KeyCache(store)
    assert verify(key, cache.active(key_id)) == key_id
    (tmp_path / "keys.db").write_bytes(b"not a database" * 512)
    cache._checked_at -= KEY_REFRESH_SECONDS
    assert verify(key, cache.active()) == key_id  # no 500 from the guard, and no key lost to a broken store


@pytest.mark.slow
def test_keys_in_postgresql_reach_a_cache_by_its_version_poll() -> None:
    with postgres_cluster(("keys",)) as server:
        url = f"postgresql+psycopg://{server}/keys"
        cli, instance = KeyStore(url), KeyStore(url)
        assert instance.file is None
        cache = KeyCache(instance)
        key_id, key = cli.create("fleet", rate_limit=7)
        assert verify(key, cache.active(key_id)) == key_id  # an unseen id checks the version at once
        assert [(r.key_id, r.rate_limit, r.revoked_at) for r in cli.list()] == [(key_id, 7, None)]
        cli.revoke(key_id)
        cache._checked_at = time.monotonic()
        assert key_id in cache.active()  # within the refresh interval nothing is read ...
        cache._checked_at -= KEY_REFRESH_SECONDS  # ... once it has passed, the moved version brings a re-read
        assert key_id not in cache.active()
        for store in (cli, instance):
            store.close()


def limits(url: str, limit: int) -> SharedRateLimits:
    return SharedRateLimits(Settings(service={"rate_limit_url": url, "rate_limit": limit, "rate_window_seconds": 60}))


def test_a_limit_is_counted_across_instances_and_survives_a_script_flush(redis_url) -> None:
    async def scenario() -> list[float | None]:
        first, second = limits(redis_url, 4), limits(redis_url, 4)
        answers = [await (first if i % 2 else second).hit("k1", None) for i in range(4)]
        redis.Redis.from_url(redis_url).script_flush()  # as after a Redis restart
        answers += [await first.hit("k1", None), await second.hit("k1", None), await first.hit("k2", None)]
        return answers

    answers = asyncio.run(scenario())
    assert answers[:4] == [None] * 4
    assert all(wait is not None and 0 < wait <= 60 for wait in answers[4:6]) and answers[6] is None


def test_a_redis_that_cannot_count_is_reported_as_unavailable(tmp_path) -> None:
    with redis_server(tmp_path / "redis") as url:
        pass  # stopped: nothing answers on its port any more

    with pytest.raises(RateLimitStoreUnavailable):
        asyncio.run(limits(url, 4).hit("k1", None))


def test_the_shared_journal_is_read_incrementally_and_fails_loudly(tmp_path) -> None:
    with redis_server(tmp_path / "redis") as url:
        writer, reader = (SharedUpdateJournal(url, "journal", 3600) for _ in range(2))
        writer.append([1])
        offset = reader.end()
        assert reader.read_from(offset) == ([], offset)
        writer.append([4, 5])
        writer.append(["*"])
        ids, newer = reader.read_from(offset)
        assert ids == ["4", "5", "*"] and reader.read_from(newer) == ([], newer)
    with pytest.raises(FeatureStoreError, match="could not be read"):
        reader.read_from(newer)
    with pytest.raises(FeatureStoreError, match="other instances may answer the old values"):
        writer.append([6])


def test_a_machine_local_limit_check_queues_behind_the_writer_lock_and_counts_once_it_is_free(tmp_path) -> None:
    """Another worker's check holds the lock (its own open file: an flock excludes it even in this process)."""
    settings = Settings(state_dir=tmp_path, service={"rate_limit": 2, "rate_window_seconds": 60})
    local = RateLimits(settings)
    answers: list[float | None] = []
    other_worker = WriterLock(settings.rate_limit_store)
    with other_worker:
        waiting = threading.Thread(target=lambda: answers.append(asyncio.run(local.hit("k1", None))))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and answers == []  # queued behind the holder, not answered without the lock
    waiting.join(10)
    answers += [asyncio.run(local.hit("k1", None)) for _ in range(2)]
    assert answers[:2] == [None, None] and answers[2] is not None and 0 < answers[2] <= 60
