"""The stores' schemas as they were when they became versioned: the baseline revision of every history.

A frozen copy, never edited: the store modules' own tables may change, but only through a new revision. A
database made before versioning is stamped at this baseline; if it is older still (made before some nullable
columns were added, which the service then added at start-up), those columns are added first, once.
"""

from __future__ import annotations

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
    inspect,
)
from sqlalchemy.engine import Connection

PREDICTION_LOG = MetaData()
Table(
    "predictions",
    PREDICTION_LOG,
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

SECURITY_LOG = MetaData()
Table(
    "security_events",
    SECURITY_LOG,
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

AUDIT_LOG = MetaData()
Table(
    "alias_moves",
    AUDIT_LOG,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("moved_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False, index=True),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("flow_run_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),
)

MONITORING_HISTORY = MetaData()
Table(
    "monitoring_checks",
    MONITORING_HISTORY,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("drift_share", Float),
    Column("quality_drop", Float),
    Column("episode", Integer, nullable=False),
    Column("triggered", Boolean, nullable=False),
    Column("retraining_run_id", String(64)),
    Column("reason", Text, nullable=False),
)

# Written with sqlite3, whose TEXT PRIMARY KEY admits NULL (revision api_keys_0002 closes that).
API_KEYS = MetaData()
Table(
    "api_keys",
    API_KEYS,
    Column("key_id", Text, primary_key=True, nullable=True),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("rate_limit", Integer),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
)


# Versioned from its first release: there is no unversioned schema to stamp.
EXPERIMENT_EVIDENCE = MetaData()


def create(connection: Connection, schema: MetaData) -> None:
    schema.create_all(connection, checkfirst=False)


def complete(connection: Connection, schema: MetaData) -> None:
    """Add the baseline's nullable columns an older, unversioned database lacks (before stamping it)."""
    found = inspect(connection)
    for table in schema.sorted_tables:
        present = {column["name"] for column in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
