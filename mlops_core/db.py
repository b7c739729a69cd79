"""Database engines of the project's own stores (logs, keys, audit log, monitoring history), by SQLAlchemy URL.

SQLite files are the embedded default; any SQLAlchemy URL (PostgreSQL in production) works by settings. Each
store's schema is versioned (``mlops_core.migrations``) and upgraded when an engine on it is opened.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, create_engine, event

from mlops_core import migrations


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
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, json_serializer=encode_json)
    return engine
