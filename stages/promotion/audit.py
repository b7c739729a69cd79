"""The alias audit log: every move of a registry alias, in order, in a store that survives restarts.

MLflow keeps no alias history, and rollback needs one. Moves of one registered model are serialised by an
exclusive transaction on this store (SQLite ``BEGIN IMMEDIATE`` by default, a PostgreSQL advisory lock by
URL), held while the alias is read, decided on, moved and recorded, so racing promotions cannot interleave.
The same lock numbers and records each new version (``model_registrations``), so racing trainings cannot
mint the same semantic version.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from mlops_core import migrations
from mlops_core.db import use_wal

Action = Literal["promote", "rollback", "clear"]

_metadata = MetaData()
alias_moves = Table(
    "alias_moves",
    _metadata,
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
model_registrations = Table(
    "model_registrations",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("semver", String(40), nullable=False),
    Column("training_run_id", String(64), nullable=False),
)


class AliasMove(BaseModel):
    id: int | None = None
    moved_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: Action
    forced: bool = False
    actor: str
    flow_run_id: str | None = None
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class Registration(BaseModel):
    id: int | None = None
    registered_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    model: str
    version: int
    semver: str
    training_run_id: str


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 120})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        use_wal(dbapi_connection)
        dbapi_connection.execute("PRAGMA synchronous=FULL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class AuditLog:
    def __init__(self, url: str):
        self.url = url
        migrations.upgrade(url, migrations.AUDIT_LOG)
        self.engine = _sqlite_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True)

    @contextmanager
    def exclusive(self, model: str) -> Iterator[Connection]:
        """A transaction no other alias move or registration of ``model`` can run beside; commits on success."""
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(model.encode())})
            yield connection

    @staticmethod
    def record(connection: Connection, move: AliasMove) -> int:
        values = move.model_dump(exclude={"id"})
        values["details"] = json.dumps(values["details"], default=str, sort_keys=True)
        return int(connection.execute(alias_moves.insert().values(**values)).inserted_primary_key[0])

    @staticmethod
    def record_registration(connection: Connection, registration: Registration) -> None:
        connection.execute(model_registrations.insert().values(**registration.model_dump(exclude={"id"})))

    def registrations(self, model: str) -> list[Registration]:
        """The versions of ``model`` in the order they were registered."""
        query = (
            select(model_registrations).where(model_registrations.c.model == model).order_by(model_registrations.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [Registration(**{**row, "registered_at": _utc(row["registered_at"])}) for row in rows]

    def history(self, model: str, alias: str | None = None, connection: Connection | None = None) -> list[AliasMove]:
        query = select(alias_moves).where(alias_moves.c.model == model).order_by(alias_moves.c.id)
        if alias:
            query = query.where(alias_moves.c.alias == alias)
        if connection is None:
            with self.engine.connect() as fresh:
                rows = fresh.execute(query).mappings().all()
        else:
            rows = connection.execute(query).mappings().all()
        return [
            AliasMove(**{**row, "details": json.loads(row["details"] or "{}"), "moved_at": _utc(row["moved_at"])})
            for row in rows
        ]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def champion_stack(moves: list[AliasMove]) -> list[int]:
    """The champions in force, oldest first, after replaying the moves: a rollback undoes, a promotion adds.

    Rolling back twice walks back through history instead of bouncing between the last two versions.
    """
    stack: list[int] = []
    for move in moves:
        if move.to_version is None:
            stack.clear()
        elif move.action == "rollback" and move.to_version in stack:
            del stack[stack.index(move.to_version) + 1 :]
        else:
            stack.append(move.to_version)
    return stack
