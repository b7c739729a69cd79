"""Connections opening a fresh SQLite file together all put it in WAL mode: none is told "database is locked"
(two trainings registering at once on a new state directory did)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from mlops_core.db import use_wal

TRIALS = 100  # without waiting out the other's switch, one of the pair failed in about 1 trial of 5


def test_two_connections_switching_a_fresh_file_to_wal_both_succeed(tmp_path: Path) -> None:
    errors: list[str] = []
    for trial in range(TRIALS):
        path = tmp_path / f"{trial}.db"
        with sqlite3.connect(path) as schema:  # a migrated store: tables, not yet WAL
            schema.execute("CREATE TABLE registrations (version INTEGER)")
        start = threading.Barrier(2)

        def register(path: Path = path, start: threading.Barrier = start) -> None:
            connection = sqlite3.connect(path, timeout=120, isolation_level=None)
            start.wait()
            try:
                use_wal(connection)
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO registrations VALUES (1)")
                connection.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                errors.append(str(exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=register) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert check.execute("SELECT count(*) FROM registrations").fetchone()[0] == 2
    assert errors == []
