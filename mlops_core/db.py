"""Database engines of the project's own stores (logs, keys, audit log, monitoring history), by SQLAlchemy URL.

SQLite files are the embedded default; any SQLAlchemy URL (PostgreSQL in production) works by settings. Each
store's schema is versioned (``mlops_core.migrations``) and upgraded when an engine on it is opened.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from mlops_core import migrations

# Switching a SQLite file to WAL (a property of the file, set once): a connection that meets another one switching
# it, or inside a transaction, is told "database is locked" at once, its busy timeout not consulted (measured: in
# 65 of 300 pairs of connections opening a fresh file together, one failed). So it tries again, a pause apart.
WAL_SWITCH_ATTEMPTS = 100
WAL_SWITCH_PAUSE_S = 0.02


def use_wal(connection: sqlite3.Connection) -> None:
    """Put the connection's file in WAL mode, waiting out another connection's switch or transaction."""
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(WAL_SWITCH_PAUSE_S)


class WriterLock:
    """One writer at a time on a SQLite file, across threads and processes, queued by the kernel.

    SQLite admits one writer and makes the others poll: a writer that finds the file locked sleeps 1, 2, 5, 10 ms
    ... and tries again (its busy handler, or a timer on the event loop). The workers' rate-limit checks and
    prediction-log commits, hundreds a second each and 0.05 to 0.1 ms long, so kept adding milliseconds to each
    other's requests. Taking this lock first (an ``flock`` on a file beside the database) queues them instead: a
    waiter wakes the moment the holder releases. Only short transactions take it: a waiter blocks its thread.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(f"{database.name}.writer-lock")
        self._threads = threading.Lock()  # an flock is held per open file, not per thread
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self._threads.acquire()
        try:
            if self._fd is None:  # opened on first use, as the database is: a failure is the store's, per request
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class EncodedJSON(str):
    """A value for a JSON column that is already JSON text: written as it is, not encoded again.

    A batch's rows are encoded by a fast encoder in one pass; the column type's own ``json.dumps`` per value
    would cost more than the rest of the insert.
    """


def encode_json(value: Any) -> str:
    return value if isinstance(value, EncodedJSON) else json.dumps(value)


def engine_for(url: str, store: migrations.Store) -> Engine:
    """An engine on ``store``, upgraded to its newest schema; SQLite files get WAL so readers never block the writer.

    ``synchronous=NORMAL`` in WAL mode keeps every committed row through a process kill (SIGKILL, OOM); only
    an operating-system crash can lose the last commits. A busy timeout lets several workers share the file.
    """
    migrations.upgrade(url, store)
    if url.startswith("sqlite:///"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=encode_json
        )

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")

    else:
        engine = create_engine(url, pool_pre_ping=True, json_serializer=encode_json)
    return engine
