"""Versioned schemas of the project's own stores (Alembic): one history per store, upgraded where it is opened.

One history per store, not one for all: each store has its own URL (the service writes the prediction and
security logs and reads the API keys, the flows write the alias audit log, the monitoring history and the A/B
evidence) and may live in its own database or share one with the others. A history per store, kept in its own version table (``alembic_version_<store>``),
upgrades exactly the tables the opening process uses, and any stores can share a database.

Every process upgrades a store when it opens it (one read of the version table when it is at head already);
``mlops db upgrade`` upgrades all configured stores at once. An upgrade runs in one exclusive transaction
(SQLite ``BEGIN IMMEDIATE``, a PostgreSQL transaction-level advisory lock), so instances starting together
migrate once and the others find the store at head. A database made before versioning (the store's tables,
no version table) is stamped at the baseline revision, which is exactly that schema, and upgraded from there.

A new revision is a file in ``versions/<store>/`` whose ``down_revision`` is that store's current head.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url

from mlops_core.migrations import baseline
from mlops_core.settings import Settings

HERE = Path(__file__).resolve().parent
# How long a starting process waits for another one's migration of the same SQLite file.
SQLITE_LOCK_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Store:
    name: str
    baseline_revision: str
    baseline_schema: MetaData

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    @property
    def versions_dir(self) -> Path:
        return HERE / "versions" / self.name


PREDICTION_LOG = Store("prediction_log", "prediction_log_0001", baseline.PREDICTION_LOG)
SECURITY_LOG = Store("security_log", "security_log_0001", baseline.SECURITY_LOG)
AUDIT_LOG = Store("audit_log", "audit_log_0001", baseline.AUDIT_LOG)
MONITORING_HISTORY = Store("monitoring_history", "monitoring_history_0001", baseline.MONITORING_HISTORY)
API_KEYS = Store("api_keys", "api_keys_0001", baseline.API_KEYS)
EXPERIMENT_EVIDENCE = Store("experiment_evidence", "experiment_evidence_0001", baseline.EXPERIMENT_EVIDENCE)
STORES = (PREDICTION_LOG, SECURITY_LOG, AUDIT_LOG, MONITORING_HISTORY, API_KEYS, EXPERIMENT_EVIDENCE)


def configured(settings: Settings) -> list[tuple[Store, str]]:
    """Every store with the URL the settings give it."""
    return [
        (PREDICTION_LOG, settings.prediction_log_url),
        (SECURITY_LOG, settings.security_log_url),
        (AUDIT_LOG, settings.audit_url),
        (MONITORING_HISTORY, settings.monitoring_state_url),
        (API_KEYS, settings.keys_url),
        (EXPERIMENT_EVIDENCE, settings.experiment_evidence_url),
    ]


@cache
def head(store: Store) -> str:
    return _scripts(store).get_current_head()


@cache
def _known(store: Store) -> frozenset[str]:
    return frozenset(script.revision for script in _scripts(store).walk_revisions())


def current(url: str | URL, store: Store) -> str | None:
    """The store's revision in the database at ``url``; None when it is not versioned (or does not exist)."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return _revision(connection, store)
    finally:
        engine.dispose()


def upgrade(url: str | URL, store: Store) -> str:
    """Bring ``store`` at ``url`` to its newest revision, creating it when absent; returns its revision then.

    A store at a revision this code does not know was upgraded by a newer release (the other colour of a
    blue-green deployment): it is left as it is, since revisions only add what older code can ignore.
    """
    newest = head(store)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            found = _revision(connection, store)
        if found == newest or _newer(found, store):
            return found
        with engine.begin() as connection:
            _lock(connection, store)
            # Read again under the lock: another process may have upgraded meanwhile.
            found = _revision(connection, store)
            if _newer(found, store):
                return found
            config = _config(store, connection)
            if found is None and _predates_versioning(connection, store):
                baseline.complete(connection, store.baseline_schema)
                command.stamp(config, store.baseline_revision)
            command.upgrade(config, "head")
        return newest
    finally:
        engine.dispose()


def _newer(revision: str | None, store: Store) -> bool:
    return revision is not None and revision not in _known(store)


def display(url: str | URL) -> str:
    """The URL without its password, for output."""
    return make_url(url).render_as_string(hide_password=True)


def _engine(url: str | URL) -> Engine:
    """An engine whose connections start no transaction by themselves, so ``_lock`` can begin the right one."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _explicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the journal mode stays the store's own choice

    return engine


def _lock(connection: Connection, store: Store) -> None:
    """Held until the transaction ends; migrations of other stores, and all readers, go on meanwhile."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        key = zlib.crc32(f"migrations {store.version_table}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _revision(connection: Connection, store: Store) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": store.version_table})
    return context.get_current_revision()


def _predates_versioning(connection: Connection, store: Store) -> bool:
    found = inspect(connection)
    return any(found.has_table(table) for table in store.baseline_schema.tables)


def _scripts(store: Store) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(store, connection=None))


def _config(store: Store, connection: Connection | None) -> Config:
    """Alembic's configuration for one store's history; ``env.py`` runs it on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(HERE).replace("%", "%%"))
    config.set_main_option("version_locations", str(store.versions_dir).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes.update(connection=connection, version_table=store.version_table)
    return config
