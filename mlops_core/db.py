"""Database engines of the project's own stores (logs, keys, audit log, monitoring history), by SQLAlchemy URL.

SQLite files are the embedded default; any SQLAlchemy URL (PostgreSQL in production) works by settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.exc import OperationalError


def engine_for(url: str, tables: MetaData) -> Engine:
    """An engine with the tables created; SQLite files get WAL so readers never block the writer.

    ``synchronous=NORMAL`` in WAL mode keeps every committed row through a process kill (SIGKILL, OOM); only
    an operating-system crash can lose the last commits. A busy timeout lets several workers share the file.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    try:
        tables.create_all(engine)
    except OperationalError:
        tables.create_all(engine)  # another worker created them between the check and the create
    _add_missing_columns(engine, tables)
    return engine


def _add_missing_columns(engine: Engine, tables: MetaData) -> None:
    """Add nullable columns introduced since a log was created (create_all never alters an existing table)."""
    found = inspect(engine)
    for table in tables.sorted_tables:
        if not found.has_table(table.name):
            continue
        present = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                try:
                    with engine.begin() as connection:
                        connection.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                except OperationalError:
                    pass  # another worker added it first
