"""The SQLite prediction log's commit on the event loop (``EventLoopWriter``): the rows of two processes
committing at once all arrive, and a loop never waits for another writer's lock (its rows go through the
writer thread, which waits instead)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from mlops_core import db
from mlops_core.prediction_log import CHECKPOINT_COMMITS, EventLoopWriter, engine_for, predictions, row_writer

ROWS_PER_PROCESS = 600


def row() -> dict[str, object]:
    return {
        "prediction_id": str(uuid.uuid4()),
        "ts": datetime.now(UTC),
        "model_name": "loan-default",
        "model_version": 1,
        "variant": "champion",
        "input_hash": "0" * 64,
        "features": db.EncodedJSON('{"age": 41}'),
        "prediction": "1",
        "confidence": 0.9,
        "probabilities": {"0": 0.1, "1": 0.9},
        "latency_ms": 1.0,
    }


def commit_concurrently(url: str, start: threading.Barrier | None = None) -> list[str]:
    """What one worker does: requests committing one row each, many at once on one loop; returns the ids."""
    writer = row_writer(engine_for(url), predictions)
    assert isinstance(writer, EventLoopWriter)

    async def requests() -> list[str]:
        rows = [row() for _ in range(ROWS_PER_PROCESS)]
        for i in range(0, ROWS_PER_PROCESS, 20):  # twenty requests per turn of the loop, then a pause
            await asyncio.gather(*(asyncio.wrap_future(writer.submit([r])) for r in rows[i : i + 20]))
        return [str(r["prediction_id"]) for r in rows]

    try:
        return asyncio.run(requests())
    finally:
        writer.close()


def worker(url: str, results: multiprocessing.Queue) -> None:
    results.put(commit_concurrently(url))


def logged_ids(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(predictions.c.prediction_id)).scalars())
    finally:
        engine.dispose()


def test_two_processes_committing_at_once_lose_no_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine_for(url).dispose()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=worker, args=(url, results)) for _ in range(2)]
    for process in processes:
        process.start()
    acknowledged = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0

    assert logged_ids(url) == set(acknowledged[0]) | set(acknowledged[1])
    assert len(logged_ids(url)) == 2 * ROWS_PER_PROCESS


def test_a_commit_while_another_writer_holds_the_file_goes_through_the_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine = engine_for(url)
    writer = row_writer(engine, predictions)
    other = sqlite3.connect(tmp_path / "predictions.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as the other worker's writer would, mid-transaction
    released = threading.Event()

    def release() -> None:
        released.wait(30)
        other.execute("COMMIT")

    holder = threading.Thread(target=release)
    holder.start()

    async def request_while_locked() -> tuple[bool, bool]:
        committed = asyncio.wrap_future(writer.submit([row()]))
        started = time.monotonic()
        await asyncio.sleep(0.3)  # the loop goes on serving while the thread waits for the lock
        # A loop that waited in SQLite's busy handler (30 s here) would be late, or find the row committed.
        pending = not committed.done() and time.monotonic() - started < 10
        released.set()
        await asyncio.wait_for(committed, 30)
        return pending, committed.done()

    try:
        pending, done = asyncio.run(request_while_locked())
    finally:
        released.set()
        holder.join()
        writer.close()
        other.close()
    assert pending and done
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions)).scalar() == 1
    engine.dispose()


def test_a_short_lock_is_waited_out_on_the_loop(tmp_path: Path) -> None:
    """The other worker's commit or a checkpoint holds the file for a few ms: the rows wait on the loop, retried
    each millisecond, instead of going to the writer thread (and SQLite's 1, 2, 5 ms busy sleeps)."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine = engine_for(url)
    writer = row_writer(engine, predictions)
    assert isinstance(writer, EventLoopWriter)
    handed_over: list[object] = []
    thread_submit = writer._thread.submit
    writer._thread.submit = lambda rows: handed_over.append(rows) or thread_submit(rows)  # type: ignore[method-assign]
    other = sqlite3.connect(tmp_path / "predictions.db", isolation_level=None, check_same_thread=False)

    async def request_during_a_short_lock() -> None:
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.005, other.execute, "COMMIT")
        await asyncio.wait_for(writer.submit([row()]), 10)

    try:
        asyncio.run(request_during_a_short_lock())
    finally:
        writer.close()
        other.close()
    assert handed_over == []
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions)).scalar() == 1
    engine.dispose()


def test_checkpoints_start_the_wal_over_while_commits_go_on(tmp_path: Path) -> None:
    """Commits keep landing while the writer thread checkpoints; the WAL file still starts over instead of growing
    with every commit."""
    path = tmp_path / "predictions.db"
    engine = engine_for(f"sqlite:///{path}")
    writer = row_writer(engine, predictions)
    commits = 4 * CHECKPOINT_COMMITS
    sizes: list[int] = []

    async def one_commit_after_another() -> None:
        for i in range(commits):
            await writer.submit([row()])
            if i == 99:
                sizes.append(Path(f"{path}-wal").stat().st_size)

    try:
        asyncio.run(one_commit_after_another())
    finally:
        writer.close()
    bytes_per_commit = sizes[0] / 100  # before the first checkpoint
    assert Path(f"{path}-wal").stat().st_size < 0.6 * commits * bytes_per_commit
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions)).scalar() == commits
    engine.dispose()


def test_another_workers_commit_is_queued_behind_not_polled(tmp_path: Path) -> None:
    """The other worker commits under the file's writer lock: the loop's commit waits for that lock and goes in
    the moment it is released, without meeting SQLite's lock and its millisecond retries."""
    path = tmp_path / "predictions.db"
    engine = engine_for(f"sqlite:///{path}")
    writer = row_writer(engine, predictions)
    assert isinstance(writer, EventLoopWriter)
    retries: list[object] = []
    retry_later = writer._retry_later
    writer._retry_later = lambda batch: retries.append(batch) or retry_later(batch)  # type: ignore[method-assign]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holding = threading.Event()

    def other_worker_commits() -> None:
        with db.WriterLock(path):  # its own open file: an flock excludes it even in this process
            other.execute("BEGIN IMMEDIATE")
            holding.set()
            time.sleep(0.05)
            other.execute("COMMIT")

    holder = threading.Thread(target=other_worker_commits)
    holder.start()
    holding.wait(10)

    async def request_during_the_other_commit() -> None:
        await asyncio.wait_for(writer.submit([row()]), 10)

    try:
        asyncio.run(request_during_the_other_commit())
    finally:
        holder.join()
        writer.close()
        other.close()
    engine.dispose()
    assert retries == []
    assert len(logged_ids(f"sqlite:///{path}")) == 1
