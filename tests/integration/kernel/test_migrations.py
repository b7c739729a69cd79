"""Upgrades lose nothing: every store, created with the schema of the release before versioning and filled,
is opened the way the service and the flows open it (which upgrades it to head) and still holds every row;
on SQLite and on PostgreSQL; also with several processes opening the stores at once.

The release schemas below are copies of the table definitions as that release created them, kept here on
purpose: the baseline revision in ``mlops_core/migrations/baseline.py`` must equal them, and a test that
imported it could not notice if it did not.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
    text,
)

from mlops_core import db, migrations
from mlops_core.api_keys import KeyStore
from mlops_core.api_keys import metadata as keys_metadata
from mlops_core.migrations import baseline
from mlops_core.prediction_log import engine_for, read_predictions
from mlops_core.prediction_log import metadata as prediction_metadata
from mlops_core.security_log import metadata as security_metadata
from mlops_core.security_log import read_security_events
from stages.experiment.evidence import EvidenceStore
from stages.experiment.evidence import _metadata as evidence_metadata
from stages.monitoring.history import CheckHistory
from stages.monitoring.history import _metadata as monitoring_metadata
from stages.promotion.audit import AuditLog
from stages.promotion.audit import _metadata as audit_metadata

MODEL = "loan-default"
ROWS = 25
PROCESSES = 2

# --- the release's schemas, as its code created them ------------------------------------------------------

RELEASE_PREDICTIONS = MetaData()
Table(
    "predictions",
    RELEASE_PREDICTIONS,
    Column("prediction_id", String(36), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("model_semver", String(40)),
    Column("variant", String(20), nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("features", JSON, nullable=False),
    Column("prediction", String(200), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("key_id", String(64)),
    Column("flags", JSON),
    Column("ground_truth", String(200)),
    Column("ground_truth_ts", DateTime(timezone=True)),
    Column("paired_id", String(36), index=True),
)
RELEASE_SECURITY = MetaData()
Table(
    "security_events",
    RELEASE_SECURITY,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("event_type", String(40), nullable=False),
    Column("client", String(100)),
    Column("user_agent", String(500)),
    Column("key_id", String(64)),
    Column("method", String(10)),
    Column("path", String(500)),
    Column("detail", JSON),
)
RELEASE_AUDIT = MetaData()
Table(
    "alias_moves",
    RELEASE_AUDIT,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("moved_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False, index=True),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    Column("actor", String(256), nullable=False),
    Column("flow_run_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False, default="{}"),
)
RELEASE_MONITORING = MetaData()
Table(
    "monitoring_checks",
    RELEASE_MONITORING,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("drift_share", Float),
    Column("quality_drop", Float),
    Column("episode", Integer, nullable=False, default=0),
    Column("triggered", Boolean, nullable=False, default=False),
    Column("retraining_run_id", String(64)),
    Column("reason", Text, nullable=False),
)
# The key store was a SQLite file written with sqlite3; the same table by SQLAlchemy URL elsewhere.
RELEASE_KEYS_SQLITE = (
    "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
    "key_hash TEXT NOT NULL, scope TEXT NOT NULL, rate_limit INTEGER, created_at TEXT NOT NULL, revoked_at TEXT)"
)
RELEASE_KEYS = MetaData()
Table(
    "api_keys",
    RELEASE_KEYS,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("rate_limit", Integer),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
)

# --- rows of every column, and how the project finds them again ----------------------------------------

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _prediction(i: int) -> dict[str, Any]:
    return {
        "prediction_id": f"00000000-0000-0000-0000-{i:012d}",
        "ts": T0 + timedelta(minutes=i),
        "model_name": MODEL,
        "model_version": 1 + i % 2,
        "model_semver": f"1.{i % 2}.0",
        "variant": ("champion", "challenger", "shadow")[i % 3],
        "input_hash": f"{i:064x}",
        "features": {"income": 1000.0 + i, "purpose": "car"},
        "prediction": str(i % 2),
        "confidence": 0.5 + i / 100,
        "probabilities": {"0": 0.5 - i / 100, "1": 0.5 + i / 100},
        "latency_ms": 1.25 + i,
        "key_id": f"key{i}",
        "flags": {"out_of_range": ["income"]} if i % 4 == 0 else None,
        "ground_truth": str(i % 2) if i % 2 else None,
        "ground_truth_ts": T0 + timedelta(hours=1, minutes=i) if i % 2 else None,
        "paired_id": f"00000000-0000-0000-0001-{i:012d}" if i % 3 == 2 else None,
    }


def _security_event(i: int) -> dict[str, Any]:
    return {
        "id": i + 1,
        "ts": T0 + timedelta(seconds=i),
        "event_type": ("invalid_key", "rate_limited", "invalid_input")[i % 3],
        "client": f"127.0.0.1:{40000 + i}",
        "user_agent": "tests",
        "key_id": f"key{i}" if i % 2 else None,
        "method": "POST",
        "path": "/predict",
        "detail": {"reason": f"case {i}"},
    }


def _alias_move(i: int) -> dict[str, Any]:
    return {
        "id": i + 1,
        "moved_at": T0 + timedelta(minutes=i),
        "model": MODEL,
        "alias": "champion",
        "from_version": i or None,
        "to_version": i + 1,
        "action": "promote",
        "forced": i % 5 == 0,
        "actor": "tests",
        "flow_run_id": f"run-{i}",
        "reason": f"move {i}",
        "details": json.dumps({"semver": f"1.{i}.0"}),
    }


def _check(i: int) -> dict[str, Any]:
    return {
        "id": i + 1,
        "checked_at": T0 + timedelta(hours=i),
        "model": MODEL,
        "window_start": T0 + timedelta(hours=i - 1),
        "window_end": T0 + timedelta(hours=i),
        "status": ("ok", "alert", "skipped")[i % 3],
        "drift_share": i / ROWS,
        "quality_drop": 0.01 * i if i % 2 else None,
        "episode": i // 3,
        "triggered": i % 7 == 0,
        "retraining_run_id": f"run-{i}" if i % 7 == 0 else None,
        "reason": f"check {i}",
    }


def _key(i: int) -> dict[str, Any]:
    return {
        "key_id": f"{i:012x}",
        "name": f"client {i}",
        "key_hash": f"{i:064x}",
        "scope": "predict",
        "rate_limit": 100 + i if i % 2 else None,
        "created_at": (T0 + timedelta(minutes=i)).isoformat(),
        "revoked_at": (T0 + timedelta(days=1)).isoformat() if i % 3 == 0 else None,
    }


def _dispose(engine: Any) -> None:
    engine.dispose()


def _closing(store: Any, read: Callable[[Any], list[Any]]) -> list[Any]:
    """Read from a store object and release its connections (the PostgreSQL cluster stops faster)."""
    try:
        return read(store)
    finally:
        store.engine.dispose()


@dataclass(frozen=True)
class Case:
    store: migrations.Store
    release: MetaData
    table: str
    key: str
    row: Callable[[int], dict[str, Any]]
    open: Callable[[str], None]  # what the service or a flow does with the store at start-up
    found: Callable[[str], list[Any]]  # the keys of the rows the project's own reader returns
    current: MetaData  # what the code of this version reads and writes


CASES = [
    Case(
        migrations.PREDICTION_LOG,
        RELEASE_PREDICTIONS,
        "predictions",
        "prediction_id",
        _prediction,
        lambda url: _dispose(engine_for(url)),
        lambda url: read_predictions(url)["prediction_id"].tolist(),
        prediction_metadata,
    ),
    Case(
        migrations.SECURITY_LOG,
        RELEASE_SECURITY,
        "security_events",
        "id",
        _security_event,
        lambda url: _dispose(db.engine_for(url, migrations.SECURITY_LOG)),
        lambda url: read_security_events(url)["id"].tolist(),
        security_metadata,
    ),
    Case(
        migrations.AUDIT_LOG,
        RELEASE_AUDIT,
        "alias_moves",
        "id",
        _alias_move,
        lambda url: _dispose(AuditLog(url).engine),
        lambda url: _closing(AuditLog(url), lambda log: [move.id for move in log.history(MODEL)]),
        audit_metadata,
    ),
    Case(
        migrations.MONITORING_HISTORY,
        RELEASE_MONITORING,
        "monitoring_checks",
        "id",
        _check,
        lambda url: _dispose(CheckHistory(url).engine),
        lambda url: _closing(CheckHistory(url), lambda history: [check.id for check in history.all(MODEL)]),
        monitoring_metadata,
    ),
    Case(
        migrations.API_KEYS,
        RELEASE_KEYS,
        "api_keys",
        "key_id",
        _key,
        lambda url: KeyStore(url).close(),
        lambda url: _closing(KeyStore(url), lambda store: [record.key_id for record in store.list()]),
        keys_metadata,
    ),
]
IDS = [case.store.name for case in CASES]


# --- databases: SQLite files, or one PostgreSQL database shared by all stores as a deployment may do -------


class Databases:
    """Fresh places for the stores: a SQLite file each, or one new PostgreSQL database shared by all of them."""

    def __init__(self, backend: str, root: Path, server: str | None) -> None:
        self.backend, self.root, self.server = backend, root, server
        self.database: str | None = None

    def url(self, store: migrations.Store) -> str:
        if self.database is None:
            self.database = self._new_database()
        return self._url(store, self.database)

    def another_url(self, store: migrations.Store) -> str:
        """A second, empty place for ``store``."""
        return self._url(store, self._new_database())

    def urls(self) -> dict[str, str]:
        return {case.store.name: self.url(case.store) for case in CASES}

    def _new_database(self) -> str:
        name = f"stores_{time.monotonic_ns()}"
        if self.backend == "postgresql":
            engine = create_engine(f"postgresql+psycopg://{self.server}/postgres", isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            engine.dispose()
        return name

    def _url(self, store: migrations.Store, database: str) -> str:
        if self.backend == "sqlite":
            (self.root / database).mkdir(exist_ok=True)
            return f"sqlite:///{self.root / database / store.name}.db"
        return f"postgresql+psycopg://{self.server}/{database}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def databases(request, tmp_path) -> Databases:
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    return Databases(request.param, tmp_path, server)


def create_release_store(case: Case, url: str) -> list[dict[str, Any]]:
    """The store as the release left it, with ``ROWS`` rows; returns the rows."""
    rows = [case.row(i) for i in range(ROWS)]
    if case.store is migrations.API_KEYS and url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db, db:
            db.execute(RELEASE_KEYS_SQLITE)
    engine = create_engine(url)
    try:
        case.release.create_all(engine)
        with engine.begin() as connection:
            connection.execute(case.release.tables[case.table].insert(), rows)
    finally:
        engine.dispose()
    return rows


def stored_rows(case: Case, url: str) -> list[dict[str, Any]]:
    table = case.release.tables[case.table]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(table).order_by(table.c[case.key])).mappings().all()
    finally:
        engine.dispose()
    return [{name: _in_utc(value) for name, value in row.items()} for row in found]


def _in_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def schema_differences(url: str, schema: MetaData) -> list[Any]:
    """What separates the database's tables from ``schema`` (version tables and other stores' tables aside)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), schema)
    finally:
        engine.dispose()
    return [d for d in differences if not (isinstance(d, tuple) and d[0] == "remove_table")]


def table_shape(url: str, table: str) -> dict[str, Any]:
    """What the database says about ``table``: columns (type, nullability), primary key, indexes."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            "primary_key": found.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)
            ),
        }
    finally:
        engine.dispose()


# --- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_baseline_revision_is_the_release_schema(case: Case, databases: Databases) -> None:
    release, versioned = databases.url(case.store), databases.another_url(case.store)
    create_release_store(case, release)
    engine = create_engine(versioned)
    with engine.begin() as connection:
        baseline.create(connection, case.store.baseline_schema)
    engine.dispose()
    assert table_shape(versioned, case.table) == table_shape(release, case.table)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_new_store_is_created_at_head_with_the_schema_the_code_uses(case: Case, databases: Databases) -> None:
    url = databases.url(case.store)
    case.open(url)
    assert migrations.current(url, case.store) == migrations.head(case.store)
    assert schema_differences(url, case.current) == []
    assert case.found(url) == []


def test_the_ab_evidence_store_versioned_from_its_first_release_is_created_at_head(databases: Databases) -> None:
    url = databases.url(migrations.EXPERIMENT_EVIDENCE)
    store, experiment = EvidenceStore(url), "loan-default-v1-vs-v2"
    row = {
        "ts": datetime(2026, 11, 30, 12, tzinfo=UTC),
        "model_version": 1,
        "variant": "champion",
        "probabilities": {"0": 0.8, "1": 0.2},
        "ground_truth": None,
        "ground_truth_ts": None,
        "paired_id": None,
    }
    try:
        assert store.load(experiment).empty
        store.save(experiment, pd.DataFrame([{**row, "prediction_id": "a"}, {**row, "prediction_id": "b"}]))
        labelled = {**row, "prediction_id": "a", "ground_truth": "1", "ground_truth_ts": row["ts"]}
        store.save(experiment, pd.DataFrame([labelled]))  # read again when its label arrived: replaces the copy
        kept = store.load(experiment).set_index("prediction_id")
    finally:
        store.close()
    assert sorted(kept.index) == ["a", "b"] and kept.loc["a", "ground_truth"] == "1"
    assert kept.loc["b", "probabilities"] == {"0": 0.8, "1": 0.2} and kept.loc["b", "ground_truth"] is None
    assert migrations.current(url, migrations.EXPERIMENT_EVIDENCE) == migrations.head(migrations.EXPERIMENT_EVIDENCE)
    assert schema_differences(url, evidence_metadata) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_release_store_is_stamped_upgraded_and_keeps_every_row(case: Case, databases: Databases) -> None:
    url = databases.url(case.store)
    rows = create_release_store(case, url)
    assert migrations.current(url, case.store) is None

    case.open(url)

    assert migrations.current(url, case.store) == migrations.head(case.store)
    assert stored_rows(case, url) == sorted(rows, key=lambda row: row[case.key])
    assert sorted(case.found(url)) == sorted(row[case.key] for row in rows)
    assert schema_differences(url, case.current) == []


def test_an_older_unversioned_prediction_log_gains_the_columns_added_since(tmp_path: Path) -> None:
    """Before the baseline, the service added new nullable columns at start-up; a log that old still opens."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    older = MetaData()
    added_later = {"model_semver", "flags", "paired_id"}
    Table(
        "predictions",
        older,
        *(c.copy() for c in RELEASE_PREDICTIONS.tables["predictions"].columns if c.name not in added_later),
    )
    engine = create_engine(url)
    older.create_all(engine)
    rows = [{k: v for k, v in _prediction(i).items() if k not in added_later} for i in range(ROWS)]
    with engine.begin() as connection:
        connection.execute(older.tables["predictions"].insert(), rows)
    engine.dispose()

    found = read_predictions(url)

    assert found["prediction_id"].tolist() == [row["prediction_id"] for row in rows]
    assert found["paired_id"].isna().all()
    assert migrations.current(url, migrations.PREDICTION_LOG) == migrations.head(migrations.PREDICTION_LOG)
    assert added_later <= {c["name"] for c in inspect(create_engine(url)).get_columns("predictions")}


def test_the_paired_index_of_an_upgraded_log_holds_only_shadow_rows(databases: Databases) -> None:
    """Champion rows (no pair, most of the log) stay out of the ``paired_id`` index: a commit writes one page fewer."""
    url = databases.url(migrations.PREDICTION_LOG)
    rows = create_release_store(CASES[0], url)
    CASES[0].open(url)
    engine = create_engine(url)
    try:
        (index,) = [i for i in inspect(engine).get_indexes("predictions") if i["column_names"] == ["paired_id"]]
        where = index["dialect_options"][f"{engine.dialect.name}_where"]
        if engine.dialect.name == "sqlite":  # the entries themselves, counted by ANALYZE: one per paired row
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
                stat = connection.execute(text("SELECT stat FROM sqlite_stat1 WHERE idx = :i"), {"i": index["name"]})
                entries = int(stat.scalar_one().split()[0])
            assert entries == sum(row["paired_id"] is not None for row in rows) < len(rows)
    finally:
        engine.dispose()
    assert "paired_id IS NOT NULL" in str(where)


def test_a_store_upgraded_by_a_newer_release_is_left_as_it_is(tmp_path: Path) -> None:
    """Blue-green: the old colour restarting after the new one migrated must still start."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditLog(url).engine.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {migrations.AUDIT_LOG.version_table} SET version_num = 'audit_log_9999'"))
    engine.dispose()

    assert migrations.upgrade(url, migrations.AUDIT_LOG) == "audit_log_9999"
    assert _closing(AuditLog(url), lambda log: log.history(MODEL)) == []


OPEN_EVERY_STORE = """
import json, sys, time
from pathlib import Path
from mlops_core import db, migrations
from mlops_core.api_keys import KeyStore
from stages.promotion.audit import AuditLog
from stages.experiment.evidence import EvidenceStore
from stages.experiment.evidence import _metadata as evidence_metadata
from stages.monitoring.history import CheckHistory
from mlops_core.prediction_log import engine_for

urls, ready, go = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
engine_for(urls["prediction_log"]).dispose()
db.engine_for(urls["security_log"], migrations.SECURITY_LOG).dispose()
AuditLog(urls["audit_log"]).engine.dispose()
CheckHistory(urls["monitoring_history"]).engine.dispose()
KeyStore(urls["api_keys"]).close()
"""


def open_at_once(urls: dict[str, str], root: Path) -> list[subprocess.CompletedProcess]:
    """``PROCESSES`` processes open every store at the same moment, as service instances and flows starting."""
    go = root / "go"
    readies = [root / f"ready-{i}" for i in range(PROCESSES)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_EVERY_STORE, json.dumps(urls), str(ready), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready in readies) and time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            break
        time.sleep(0.05)
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


def version_rows(url: str, store: migrations.Store) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {store.version_table}"))]
    finally:
        engine.dispose()


# Both catch a missing lock; the SQLite run of the second is left to the slow set to keep the fast one fast.
@pytest.mark.parametrize("release", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["new", "release"])
def test_processes_opening_the_stores_at_once_migrate_once(release: bool, databases: Databases, tmp_path: Path):
    urls = databases.urls()
    rows = {case.store.name: create_release_store(case, urls[case.store.name]) for case in CASES if release}

    results = open_at_once(urls, tmp_path)

    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr[-2000:] for r in results]
    for case in CASES:
        url = urls[case.store.name]
        assert version_rows(url, case.store) == [migrations.head(case.store)]
        expected = sorted(rows.get(case.store.name, []), key=lambda row: row[case.key])
        assert stored_rows(case, url) == expected
