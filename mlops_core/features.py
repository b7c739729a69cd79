"""The feature store (Feast) as the service and the pipeline share it: the store, online lookups and updates.

Training sets and materialisation, which only the pipeline needs, are in ``stages.features``.

Feast is imported on first use: it costs several seconds, which processes that never touch the store should not pay.
Every write that changes what the online store answers (materialisation, updates, a new definition) is also
appended to the *update journal*, a small file beside the store. Cached lookups in any process read the new
lines of the journal before answering (one ``stat`` when nothing changed) and drop the entities named there, so
an update is never answered stale through a cache, whichever process or worker made it or reads it. Instances on
several machines share the journal as a Redis stream instead (``MLOPS_FEATURES__JOURNAL_URL``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from cachetools import TTLCache
from redis.exceptions import RedisError

from feature_repo import definitions
from mlops_core import redis_store
from mlops_core.settings import BULK_SQLITE_ONLINE_STORE, Settings

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

ALL_ENTITIES = "*"
# Shared journal entries older than this are trimmed. It exceeds the cache TTL (or is raised to it): a cache that
# has not read the journal for longer holds no entry a trimmed update could concern.
JOURNAL_RETENTION_SECONDS = 3600.0


class FeatureStoreError(RuntimeError):
    """The store could not be read or written; the message says what failed."""


class UnknownEntity(LookupError):
    pass


class InvalidFeatures(ValueError):
    """An update or a training window that does not fit the feature definitions; ``problems`` name the fields."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class EntityFeatures:
    """One entity's newest feature values; ``missing`` lists features the store has no value row for."""

    entity_id: int
    values: dict[str, Any]
    as_of: datetime | None
    missing: tuple[str, ...] = ()


class UpdateJournal:
    """Append-only lines of updated entity ids ("*" for all), read incrementally by every cache."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entity_ids: Iterable[int | str]) -> None:
        lines = "".join(f"{entity_id}\n" for entity_id in entity_ids)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.write(lines)
            journal.flush()
            os.fsync(journal.fileno())

    def end(self) -> int:
        """Where a new reader starts: after everything written so far."""
        return self.read_from(0)[1]

    def read_from(self, offset: int) -> tuple[list[str], int]:
        """Entity ids appended since ``offset`` and the new offset; a shorter file (recreated) means everything."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return ([ALL_ENTITIES] if offset else []), 0
        if size == offset:
            return [], offset
        if size < offset:
            return [ALL_ENTITIES], 0
        with self.path.open("rb") as journal:
            journal.seek(offset)
            chunk = journal.read(size - offset)
        complete = chunk.rfind(b"\n") + 1  # a line being written is read next time
        return chunk[:complete].decode("utf-8").split(), offset + complete


class SharedUpdateJournal:
    """The journal as a Redis stream, for instances on several machines: one entry per write, its ids
    space-separated; a reader's offset is the id of the last entry it read (one ``XRANGE`` when nothing changed).

    A Redis that cannot be read or written is a FeatureStoreError: a cache that cannot see updates must not
    answer from itself, and a writer must know its update may be answered stale elsewhere until the cache TTL.
    """

    def __init__(self, url: str, stream: str, retention_seconds: float) -> None:
        self.redis = redis_store.client(url)
        self.stream = stream
        self.retention_ms = int(retention_seconds * 1000)

    def append(self, entity_ids: Iterable[int | str]) -> None:
        ids = " ".join(str(entity_id) for entity_id in entity_ids)
        if not ids:
            return
        oldest_kept = int(time.time() * 1000) - self.retention_ms
        try:
            self.redis.xadd(self.stream, {"ids": ids}, minid=oldest_kept, approximate=True)
        except RedisError as exc:
            raise FeatureStoreError(
                f"the update journal could not be written ({exc!r}): other instances may answer the old values "
                "until their cache TTL expires"
            ) from exc

    def end(self) -> str:
        try:
            newest = self.redis.xrevrange(self.stream, count=1)
        except RedisError as exc:
            raise FeatureStoreError(f"the update journal could not be read: {exc!r}") from exc
        return newest[0][0].decode() if newest else "0-0"

    def read_from(self, offset: str) -> tuple[list[str], str]:
        """Entity ids appended after the entry ``offset`` and the id of the newest entry read."""
        try:
            entries = self.redis.xrange(self.stream, min=f"({offset}")
        except RedisError as exc:
            raise FeatureStoreError(f"the update journal could not be read: {exc!r}") from exc
        if not entries:
            return [], offset
        ids = [entity for _, fields in entries for entity in fields[b"ids"].decode().split()]
        return ids, entries[-1][0].decode()


def update_journal(settings: Settings) -> UpdateJournal | SharedUpdateJournal:
    """The journal the settings name: a Redis stream when a URL is set, else the file beside the store."""
    if settings.features.journal_url:
        stream = f"mlops:feature-updates:{settings.features.project}"
        retention = max(JOURNAL_RETENTION_SECONDS, settings.features.cache_ttl_seconds)
        return SharedUpdateJournal(settings.features.journal_url, stream, retention)
    return UpdateJournal(settings.feature_store_dir / "updates.journal")


class FeatureRepository:
    """The project's Feast store, configured from the settings.

    ``feature_repo/feature_store.yaml`` describes the same store to Feast's own CLI and UI from the environment
    (``MLOPS_STATE_DIR``); a test keeps the two configurations alike.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.features
        self.root = settings.feature_store_dir
        self.offline_rows = definitions.offline_rows(self.root, self.config.view)
        self.offline_dir = Path(self.offline_rows).parent
        self.journal = update_journal(settings)

    @cached_property
    def store(self) -> FeatureStore:
        from feast import FeatureStore
        from feast.repo_config import RepoConfig

        self.root.mkdir(parents=True, exist_ok=True)
        online = self.config.online_store or {"type": BULK_SQLITE_ONLINE_STORE, "path": str(self.root / "online.db")}
        config = RepoConfig(
            project=self.config.project,
            registry=self.config.registry or str(self.root / "registry.db"),
            provider="local",
            online_store=online,
            offline_store=self.config.offline_store,
            entity_key_serialization_version=3,
            repo_path=str(self.root),
        )
        return FeatureStore(config=config)

    @cached_property
    def view(self) -> FeatureView:
        ttl = timedelta(days=self.config.ttl_days)
        return definitions.applicant_features(self.config.view, self.offline_rows, ttl)

    def apply(self) -> None:
        """Register the definitions (idempotent); cached entities are dropped in case a definition changed."""
        self.offline_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store.apply([definitions.applicant_entity(), self.view])
        except Exception as exc:
            raise FeatureStoreError(f"applying the feature definitions failed: {exc}") from exc
        self.journal.append([ALL_ENTITIES])

    # --- online: lookups and updates ----------------------------------------------------------------------------

    def lookup(self, entity_id: int) -> EntityFeatures:
        """The entity's newest values from the online store; raises UnknownEntity when it has none at all."""
        try:
            response = self.store.get_online_features(
                features=self.references(), entity_rows=[{definitions.JOIN_KEY: entity_id}]
            ).to_dict(include_event_timestamps=True)
        except Exception as exc:
            raise FeatureStoreError(f"the online store could not be read: {type(exc).__name__}: {exc}") from exc
        found = {name: bool(response.get(f"{name}__ts", [0])[0]) for name in definitions.FEATURES}
        if not any(found.values()):
            raise UnknownEntity(f"no features stored for {definitions.JOIN_KEY}={entity_id}")
        as_of = response.get(definitions.AS_OF, [None])[0]
        return EntityFeatures(
            entity_id=entity_id,
            values={name: response[name][0] for name in definitions.FEATURES if found[name]},
            as_of=as_of,
            missing=tuple(name for name in definitions.FEATURES if not found[name]),
        )

    def update(self, entity_id: int, values: Mapping[str, Any]) -> EntityFeatures:
        """Record new values for one entity, stamped now: online at once, offline for later training sets.

        Values not given keep their current online value; an entity new to the store needs every feature.
        """
        unknown = sorted(set(values) - set(definitions.FEATURES))
        if unknown:
            raise InvalidFeatures([f"{name}: not a feature of {self.config.view}" for name in unknown])
        try:
            current = self.lookup(entity_id).values
        except UnknownEntity:
            current = {}
        merged = {**current, **values}
        absent = [name for name in definitions.FEATURES if name not in merged]
        if absent:
            raise InvalidFeatures([f"{name}: required for an entity new to the store" for name in absent])
        now = pd.Timestamp.now(tz="UTC")
        rows = feature_rows(pd.DataFrame([{definitions.JOIN_KEY: entity_id, **merged}]), pd.Series([now]))
        try:
            self.write_online(rows)
        except Exception as exc:
            raise FeatureStoreError(f"the online store could not be written: {exc}") from exc
        self.journal.append([entity_id])
        self.write_parquet(rows, f"update-{now.strftime('%Y%m%dT%H%M%S%f')}-{entity_id}")
        return EntityFeatures(entity_id, {n: rows.iloc[0][n] for n in definitions.FEATURES}, now.to_pydatetime())

    def write_online(self, rows: pd.DataFrame) -> None:
        """Write feature rows (entity, features, stamp) online: straight from the columns into the embedded SQLite
        store (the bytes Feast writes, see mlops_core/online_store.py), through Feast's ``write_to_online_store``
        into any other store Feast configures."""
        from mlops_core.online_store import BulkSqliteOnlineStore

        online = self.store._get_provider().online_store
        if isinstance(online, BulkSqliteOnlineStore):
            online.write_frame(self.store.config, self.store.get_feature_view(self.config.view), rows)
        else:
            self.store.write_to_online_store(self.config.view, df=rows)

    def references(self) -> list[str]:
        """The view's features as Feast names them (``view:feature``), its ``as_of`` stamp included."""
        return [f"{self.config.view}:{name}" for name in [*definitions.FEATURES, definitions.AS_OF]]

    def write_parquet(self, rows: pd.DataFrame, stem: str) -> Path:
        """Write feature rows to the offline store under ``stem``, atomically (readers never see a partial file)."""
        self.offline_dir.mkdir(parents=True, exist_ok=True)
        path = self.offline_dir / f"{stem}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")  # hidden while written: readers of the directory skip it
        rows.to_parquet(tmp, index=False)
        tmp.replace(path)
        return path


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def feature_rows(frame: pd.DataFrame, stamps: pd.Series) -> pd.DataFrame:
    """The view's columns with the types of its schema, stamped with ``stamps``; refuses values that do not fit."""
    missing = [name for name in [definitions.JOIN_KEY, *definitions.FEATURES] if name not in frame.columns]
    if missing:
        raise InvalidFeatures([f"{name}: column missing" for name in missing])
    rows = pd.DataFrame({definitions.JOIN_KEY: frame[definitions.JOIN_KEY].to_numpy()})
    problems = []
    for name in definitions.FEATURES:
        column = frame[name].reset_index(drop=True)
        if name in definitions.TEXT_FEATURES:
            # One C-level pass when every value is a string (the usual case); a per-value check names the others.
            all_text = pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")
            bad = pd.Series(False, index=column.index) if all_text else column.notna() & ~column.map(_is_text)
            rows[name] = column.astype(object).where(column.notna(), None)
        else:
            numeric = pd.to_numeric(column, errors="coerce")
            bad = column.notna() & numeric.isna()
            if name in definitions.INTEGER_FEATURES:
                bad |= numeric.notna() & (numeric % 1 != 0)
                numeric = numeric.astype("Int64") if not bad.any() else numeric
            rows[name] = numeric
        if bad.any():
            problems.append(
                f"{name}: {int(bad.sum())} value(s) not of the feature's type, e.g. {column[bad].iloc[0]!r}"
            )
    if problems:
        raise InvalidFeatures(problems)
    stamps = pd.to_datetime(stamps.reset_index(drop=True), utc=True)
    rows[definitions.EVENT_TIMESTAMP] = stamps
    rows[definitions.AS_OF] = stamps
    return rows


class CachedFeatures:
    """Entity lookups with a bounded in-process TTL cache in front, kept honest by the update journal.

    A hit is served only while its entry is younger than the TTL, so when the store is down nothing older than
    the TTL is answered. Lookups run under one lock (one store read at a time per process): between reading the
    journal and storing a fresh entry no update of that entity can slip through unnoticed.
    """

    def __init__(self, repository: FeatureRepository, ttl_seconds: float, max_entities: int) -> None:
        self.repository = repository
        self.cache: TTLCache[int, EntityFeatures] = TTLCache(maxsize=max_entities, ttl=ttl_seconds)
        self.hits = self.misses = 0
        self._offset = self.repository.journal.end()
        self._lock = threading.Lock()

    def get(self, entity_id: int) -> EntityFeatures:
        with self._lock:
            self._apply_journal()
            cached = self.cache.get(entity_id)
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            features = self.repository.lookup(entity_id)
            if not self._apply_journal(watch=entity_id):
                self.cache[entity_id] = features
            return features

    def _apply_journal(self, watch: int | None = None) -> bool:
        """Drop the entities updated since the last read; True when ``watch`` was among them."""
        updated, self._offset = self.repository.journal.read_from(self._offset)
        if ALL_ENTITIES in updated:
            self.cache.clear()
            return True
        touched = False
        for entity in updated:
            self.cache.pop(int(entity), None)
            touched |= watch is not None and int(entity) == watch
        return touched
