"""The prediction log: every answered prediction, written by the service, read by monitoring.

SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL in production) by settings. Class labels and
ground truth are stored as text so that integer and string targets share one schema.

A ``/predict_batch`` call is committed before its answer as ONE record of the batch journal
(``prediction_batches``: the common columns, and the rows' features and probabilities as an Arrow IPC stream),
which costs milliseconds where ten thousand ``predictions`` rows cost half a second. The journal is expanded into
``predictions`` rows afterwards (``expand_batches``: in the service's background thread, and by every process that
opens the log with ``engine_for``, so readers and a restarted service see every committed batch as rows). Each
chunk of a record is claimed by a conditional update of its ``expanded`` counter (or the delete of the record for
the last chunk) in the transaction that inserts the chunk's rows: expanders running at once, in several
processes or service instances sharing one PostgreSQL log, never write a row twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    or_,
    select,
    text,
    update,
)

from mlops_core import db, migrations

# The ``variant`` column: which answer a row records. A shadow row is the challenger's answer to a request
# the champion answered; only champion and challenger answers are returned to callers.
VARIANT_CHAMPION, VARIANT_CHALLENGER, VARIANT_SHADOW = "champion", "challenger", "shadow"
VARIANTS = (VARIANT_CHAMPION, VARIANT_CHALLENGER, VARIANT_SHADOW)

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
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
    # A shadow row's champion answer (same request, same features): its ground truth is the shadow row's.
    Column("paired_id", String(36)),
    # Only shadow rows have a pair: champion rows stay out of the index, one page fewer to write per commit.
    Index(
        "ix_predictions_paired_id",
        "paired_id",
        sqlite_where=text("paired_id IS NOT NULL"),
        postgresql_where=text("paired_id IS NOT NULL"),
    ),
)


# The batch journal: one record per answered batch, until ``expand_batches`` has turned it into ``predictions`` rows.
prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("model_semver", String(40)),
    Column("variant", String(20), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("key_id", String(64)),
    Column("row_count", Integer, nullable=False),
    Column("expanded", Integer, nullable=False),  # rows already in ``predictions``, in row order
    Column("rows", LargeBinary, nullable=False),  # Arrow IPC stream, see ``batch_record``
)

logger = logging.getLogger(__name__)
# A batch's prediction ids are its id and the row number in hexadecimal: a UUID (version 4 layout, 82 random bits
# per batch) that names its batch, so a label for a row not expanded yet finds the record to expand.
BATCH_ID_LENGTH = 26
ROW_NUMBER_DIGITS = 10
# Rows per expansion transaction: short enough that the service's own commits never wait long for the lock.
EXPANSION_CHUNK_ROWS = 2000
# A worker expands the journal once no batch has come for this long: the expansion's Python work would otherwise
# take turns on the worker's interpreter lock with the next batch's and double its time. With more rows than
# EXPANSION_BACKLOG_ROWS waiting it expands at once all the same, so a steady stream of batches cannot grow the journal.
EXPANSION_QUIET_SECONDS = 1.0
EXPANSION_BACKLOG_ROWS = 100_000
# Column-name prefixes of the journal's Arrow rows.
FEATURE, PROBABILITY = "features.", "probabilities."
# The ``predictions`` columns a journal record holds once for all its rows (``ground_truth`` and its time: none yet).
SHARED_COLUMNS = ("ts", "model_name", "model_version", "model_semver", "variant", "latency_ms", "key_id")
# A row without a note: what the JSON column stores for None, encoded once.
NO_FLAGS = db.EncodedJSON("null")


def engine_for(url: str) -> Engine:
    """An engine on the prediction log at ``url``, upgraded to its newest schema, with every batch committed so
    far expanded into ``predictions`` rows: what a reader (monitoring, A/B comparison) and a starting service need."""
    engine = db.engine_for(url, migrations.PREDICTION_LOG)
    expand_batches(engine)
    return engine


def canonical_json(features: Mapping[str, Any]) -> bytes:
    """The row as compact JSON with sorted keys (NaN as null): what is logged, and what its hash is taken of."""
    return orjson.dumps(features, option=orjson.OPT_SORT_KEYS, default=str)


def input_hash(features: Mapping[str, Any]) -> str:
    """SHA-256 of the row in canonical JSON: equal inputs hash equal whatever the key order."""
    return hashlib.sha256(canonical_json(features)).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


class DriverInsert:
    """A table's insert in the driver's own form: its SQL, each column with the type's bind conversion (JSON
    encoding, SQLite's datetime text), positional or named parameters as the driver wants them.

    The statement is compiled once, and a batch goes to the driver's ``executemany`` directly: SQLAlchemy's
    per-row parameter processing cost more than the database's own work for a batch of thousands of rows.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        dialect = engine.dialect
        columns = [column for column in table.columns if column is not table.autoincrement_column]
        compiled = table.insert().compile(dialect=dialect, column_keys=[column.name for column in columns])
        binds = {column.name: column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns}
        order = list(compiled.positiontup or []) if dialect.positional else [column.name for column in columns]
        self.statement = str(compiled)
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = [(name, binds[name]) for name in order]
        self._names = [name for name, _ in self._columns]
        self._positional = bool(dialect.positional)

    def execute(
        self, connection: Connection, rows: Iterable[Mapping[str, Any]], shared: Mapping[str, Any] | None = None
    ) -> None:
        """Insert ``rows``; ``shared`` holds the values every row has, converted once."""
        connection.exec_driver_sql(self.statement, self.parameters(rows, shared))

    def parameters(self, rows: Iterable[Mapping[str, Any]], shared: Mapping[str, Any] | None = None) -> list[Any]:
        """The driver's parameters for ``rows``, for its ``executemany``."""
        shared = shared or {}
        template = [
            (shared[name] if bind is None else bind(shared[name])) if name in shared else None
            for name, bind in self._columns
        ]
        own = [(i, name, bind) for i, (name, bind) in enumerate(self._columns) if name not in shared]
        parameters: list[Any] = []
        for row in rows:
            values = template.copy()
            for i, name, bind in own:
                value = row.get(name)
                values[i] = value if bind is None else bind(value)
            parameters.append(tuple(values) if self._positional else dict(zip(self._names, values, strict=True)))
        return parameters


# ``EventLoopWriter``'s commits between two checkpoints: a few rows each, about SQLite's own 1,000 WAL pages.
CHECKPOINT_COMMITS = 250
# How often, and for how long, ``EventLoopWriter`` tries a commit that finds the file locked again on the loop
# before handing its rows to the writer thread: the locks it meets (a checkpoint, a few ms; a batch journal's
# insert) mostly end sooner, and the thread would wait in SQLite's busy handler, which sleeps 1, 2, 5, 10 ms
# between tries.
BUSY_RETRY_INTERVAL_S = 0.001
BUSY_RETRY_S = 0.02
# Tries of a checkpoint's locked step (``EventLoopWriter._checkpoint``), a millisecond apart.
CHECKPOINT_ATTEMPTS = 20


class GroupWriter:
    """Inserts rows from many concurrent requests in one transaction per batch (group commit).

    A caller waits on the returned future before it answers, so an acknowledged row is committed; while one
    batch commits, the next one collects, so the cost per row falls as load rises.
    """

    def __init__(self, engine: Engine, table: Table, *, max_batch: int = 512) -> None:
        self.engine = engine
        self._table = table
        self._max_batch = max_batch
        self._insert = DriverInsert(engine, table)
        self._queue: queue.SimpleQueue[tuple[list[dict[str, Any]], Future[None]] | Callable[[], None] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=f"{table.name}-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> Future[None]:
        future: Future[None] = Future()
        self._queue.put((rows, future))
        return future

    def run(self, task: Callable[[], None]) -> None:
        """Run ``task`` in the writer thread, after the rows submitted before it."""
        self._queue.put(task)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < self._max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if isinstance(item, tuple)]
            if batch:
                self._write(batch)
            for task in (item for item in items if callable(item)):
                try:
                    task()
                except Exception:
                    logger.exception("a task of the %s writer failed", self._table.name)
            if any(item is None for item in items):
                return

    def _write(self, batch: list[tuple[list[dict[str, Any]], Future[None]]]) -> None:
        try:
            with self.engine.begin() as connection:
                self._insert.execute(connection, (row for rows, _ in batch for row in rows))
        except Exception as exc:  # every waiting request learns its rows were not stored
            for _, future in batch:
                future.set_exception(exc)
            return
        for _, future in batch:
            future.set_result(None)


class EventLoopWriter:
    """Group commit on the event loop for a SQLite log, with ``GroupWriter``'s thread when the file is busy.

    Handing each commit to a writer thread and back costs two switches of the interpreter lock, which a busy event
    loop holds: milliseconds at the tail, where the write itself takes 0.1 to 0.3 ms. So the rows that requests
    submit during one turn of the loop are committed by one flush scheduled for the end of that turn, on the loop's
    own connection, in one transaction. The other workers' loops commit as often, 0.05 to 0.1 ms each: the flush
    queues behind them on the file's ``db.WriterLock`` and goes in the moment the holder releases it (polled
    instead, one request in nine at half of capacity waited a millisecond or more). The loop must never wait
    for a long writer (SQLite's busy handler sleeps 1 to 10 ms and would stall every request of the worker):
    the connection has no busy timeout, so ``BEGIN IMMEDIATE`` fails at once while any connection outside that
    lock writes (the batch journal, an expansion, a label, a checkpoint, another process). The flush is then
    tried again on the loop a millisecond later, with the rows submitted meanwhile, for up to ``BUSY_RETRY_S``:
    most locks are that short. Rows that still find the file locked go to the writer thread, which waits for
    the lock instead. Checkpoints copy the WAL into the database in that thread too (``CHECKPOINT_COMMITS``):
    the loop's connection never checkpoints.

    Durability is ``GroupWriter``'s: a request's future completes once its rows are committed (WAL with
    ``synchronous=NORMAL``, so they survive a kill of the process), and with the commit's error if they were not.
    One instance serves one event loop.
    """

    def __init__(self, engine: Engine, table: Table, thread: GroupWriter) -> None:
        self.engine = engine
        self._insert = DriverInsert(engine, table)
        self._thread = thread
        self._path = str(engine.url.database)
        self._writer = db.WriterLock(Path(self._path))
        self._connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=0)
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA wal_autocheckpoint=0")
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._flush_scheduled = False
        self._busy_since: float | None = None  # when the pending rows first found the file locked
        self._checkpointer: sqlite3.Connection | None = None  # opened and used in the writer thread
        self._commits = 0

    @staticmethod
    def suits(engine: Engine) -> bool:
        """Whether the log is a SQLite file (over the network, PostgreSQL keeps the thread: a round trip must not
        block the loop)."""
        return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")

    def submit(self, rows: list[dict[str, Any]]) -> asyncio.Future[None]:
        """Called on the event loop; the future completes once ``rows`` are committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((rows, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def close(self, timeout: float = 10.0) -> None:
        self._thread.close(timeout)
        self._connection.close()
        if self._checkpointer is not None:
            self._checkpointer.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        connection = self._connection
        try:
            with self._writer:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    self._insert.statement, self._insert.parameters(row for rows, _ in batch for row in rows)
                )
                connection.execute("COMMIT")
        # Busy, or failed (the lock file too): the thread retries, waiting; its error, if any, is the answer.
        except (sqlite3.Error, OSError) as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY and self._retry_later(batch):
                return
            self._busy_since = None
            self._hand_over(batch)
            return
        self._busy_since = None
        for _, future in batch:
            if not future.done():  # a request cancelled meanwhile (client gone) no longer waits
                future.set_result(None)
        self._commits += 1
        if self._commits % CHECKPOINT_COMMITS == 0:
            self._thread.run(self._checkpoint)

    def _retry_later(self, batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]) -> bool:
        """Put ``batch`` back before the rows submitted since, to be flushed again on the loop shortly; False once
        its rows have waited ``BUSY_RETRY_S`` for the lock (they go to the thread then)."""
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        elif now - self._busy_since >= BUSY_RETRY_S:
            return False
        self._pending = batch + self._pending
        self._flush_scheduled = True
        asyncio.get_running_loop().call_later(BUSY_RETRY_INTERVAL_S, self._flush)
        return True

    def _checkpoint(self) -> None:
        """In the writer thread: copy the WAL into the database while holding the write lock, so that no commit
        lands during the copy and the next one starts the WAL file over. (A checkpoint racing the loop's commits
        would rarely finish with every frame copied, and the file would grow without bound.)

        Two steps keep the lock short: ``PASSIVE`` copies the bulk (2 to 4 ms for 250 commits, most of it the two
        syncs) while commits go on; ``FULL`` then takes the write lock, copies the few frames committed meanwhile,
        syncs and releases it (0.5 ms alone, 1 to 12 ms at half of capacity, mostly its two syncs), in one call
        into SQLite, without the interpreter lock. (Holding the write lock from Python, a transaction on one
        connection and the copy on another, held it while waiting for the interpreter lock between the steps,
        which a busy event loop keeps for up to its switch interval, 5 ms: every worker's commits waited 10 to 20
        ms, at every checkpoint.) No busy timeout, which ``FULL`` would also spend waiting for readers while it
        holds the write lock: when another writer is mid-commit (or a reader holds an older snapshot) it copies
        what it can and says it was busy, and is tried again a millisecond later, up to ``CHECKPOINT_ATTEMPTS``
        times."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self._path, isolation_level=None, timeout=0, check_same_thread=False)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        for _ in range(CHECKPOINT_ATTEMPTS):
            busy, _, _ = self._checkpointer.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            if not busy:
                return
            time.sleep(BUSY_RETRY_INTERVAL_S)

    def _hand_over(self, batch: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]) -> None:
        committed = asyncio.wrap_future(self._thread.submit([row for rows, _ in batch for row in rows]))

        def settle(done: asyncio.Future[None]) -> None:
            error = done.exception()
            for _, future in batch:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

        committed.add_done_callback(settle)


def row_writer(engine: Engine, table: Table) -> GroupWriter | EventLoopWriter:
    """The service's writer of per-request rows: on the event loop for a SQLite file, else a thread."""
    thread = GroupWriter(engine, table)
    return EventLoopWriter(engine, table, thread) if EventLoopWriter.suits(engine) else thread


# ---- batches: one journal record per batch, expanded into rows ------------------------------------------------


def new_batch_id() -> str:
    return str(uuid.uuid4())[:BATCH_ID_LENGTH]


def batch_prediction_ids(batch_id: str, stop: int, start: int = 0) -> list[str]:
    """The prediction ids of a batch's rows ``start`` to ``stop``, in row order (see ``BATCH_ID_LENGTH``)."""
    return [f"{batch_id}{i:0{ROW_NUMBER_DIGITS}x}" for i in range(start, stop)]


def batch_record(
    batch_id: str,
    features: Mapping[str, np.ndarray],
    probabilities: np.ndarray,
    classes: Sequence[Any],
    flags: Sequence[str | None],
    paired_ids: Sequence[str] | None = None,
    **common: Any,
) -> dict[str, Any]:
    """The journal record of a batch: ``common`` fills the columns its rows share (ts, model, variant, latency,
    key), the rows go in as columns of one Arrow IPC stream: features, a probability column per class, each row's
    flags as JSON text (null without a note) and, for shadow rows, the paired champion answer's id."""
    columns: dict[str, pa.Array] = {FEATURE + name: pa.array(values) for name, values in features.items()}
    columns |= {PROBABILITY + str(c): pa.array(probabilities[:, i]) for i, c in enumerate(classes)}
    columns["flags"] = pa.array(flags, pa.string())
    columns["paired_id"] = pa.array(paired_ids if paired_ids is not None else [None] * len(flags), pa.string())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {
        "batch_id": batch_id,
        "row_count": table.num_rows,
        "expanded": 0,
        "rows": sink.getvalue().to_pybytes(),
        **common,
    }


def prediction_rows(
    ids: Sequence[str],
    feature_names: Sequence[str],
    value_rows: Iterable[Sequence[Any]],
    probabilities: np.ndarray,
    classes: Sequence[str],
    flags: Sequence[str | None],
    paired_ids: Sequence[str | None],
) -> list[dict[str, Any]]:
    """The columns of ``predictions`` rows that each answer has its own value in: features (canonical JSON, hashed
    for ``input_hash``), prediction, confidence, probabilities, flags (JSON text, None without a note) and the
    paired id. One place for the row format, whether a request's rows are written at once or a batch's record
    is expanded later; every JSON value is encoded once, by orjson."""
    best = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(best)), best]
    rows = []
    for prediction_id, values, probs, choice, score, noted, paired_id in zip(
        ids,
        value_rows,
        probabilities.tolist(),
        best.tolist(),
        confidence.tolist(),
        flags,
        paired_ids,
        strict=True,
    ):
        features = canonical_json(dict(zip(feature_names, values, strict=True)))
        rows.append(
            {
                "prediction_id": prediction_id,
                "input_hash": hashlib.sha256(features).hexdigest(),
                "features": db.EncodedJSON(features.decode()),
                "prediction": classes[choice],
                "confidence": score,
                "probabilities": db.EncodedJSON(orjson.dumps(dict(zip(classes, probs, strict=True))).decode()),
                "flags": NO_FLAGS if noted is None else db.EncodedJSON(noted),
                "paired_id": paired_id,
            }
        )
    return rows


def _batch_rows(record: Mapping[str, Any], table: pa.Table, start: int, stop: int) -> list[dict[str, Any]]:
    """``predictions`` rows ``start`` to ``stop`` of a journal record: what per-row logging writes for them."""
    part = table.slice(start, stop - start)
    names = [name for name in part.column_names if name.startswith(FEATURE)]
    classes = [name.removeprefix(PROBABILITY) for name in part.column_names if name.startswith(PROBABILITY)]
    return prediction_rows(
        batch_prediction_ids(record["batch_id"], stop, start),
        [name.removeprefix(FEATURE) for name in names],
        zip(*(part.column(name).to_pylist() for name in names), strict=True),
        np.column_stack([part.column(PROBABILITY + c).to_numpy() for c in classes]),
        classes,
        part.column("flags").to_pylist(),
        part.column("paired_id").to_pylist(),
    )


def expand_batches(engine: Engine, batch_id: str | None = None) -> int:
    """Turn the committed journal records (or the one of ``batch_id``) into ``predictions`` rows; returns how many
    rows this call wrote. Returns once no such record is left, whoever expanded the rest."""
    query = select(prediction_batches.c.batch_id).order_by(prediction_batches.c.ts)
    if batch_id is not None:
        query = query.where(prediction_batches.c.batch_id == batch_id)
    with engine.connect() as connection:
        pending = connection.execute(query).scalars().all()
    if not pending:
        return 0
    insert = DriverInsert(engine, predictions)
    return sum(_expand(engine, insert, pending_id) for pending_id in pending)


def _expand(engine: Engine, insert: DriverInsert, batch_id: str) -> int:
    journal = prediction_batches.c
    with engine.connect() as connection:
        record = connection.execute(select(prediction_batches).where(journal.batch_id == batch_id)).mappings().first()
    if record is None:
        return 0
    table = pa.ipc.open_stream(record["rows"]).read_all()
    shared = {name: record[name] for name in SHARED_COLUMNS}
    total, start, written = record["row_count"], record["expanded"], 0
    while start is not None:
        stop = min(start + EXPANSION_CHUNK_ROWS, total)
        this = (journal.batch_id == batch_id) & (journal.expanded == start)
        claim = delete(prediction_batches) if stop == total else update(prediction_batches).values(expanded=stop)
        with engine.begin() as connection:
            # The claim and the rows commit together: a concurrent expander's claim of the same chunk finds
            # ``expanded`` moved on (PostgreSQL re-checks the condition after the row lock) and writes nothing.
            if connection.execute(claim.where(this)).rowcount == 1:
                insert.execute(connection, _batch_rows(record, table, start, stop), shared)
                written += stop - start
        with engine.connect() as connection:
            start = connection.execute(select(journal.expanded).where(journal.batch_id == batch_id)).scalar()
    return written


class BatchJournal:
    """The service's side of the journal: commits each batch's record (group commit, before the answer) and
    expands committed records into rows in a background thread once batches pause (``EXPANSION_QUIET_SECONDS``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = GroupWriter(engine, prediction_batches, max_batch=64)
        self._committed, self._stopping = threading.Event(), threading.Event()
        self._last_batch, self._waiting_rows = time.monotonic(), 0
        self._thread = threading.Thread(target=self._expand_committed, name="prediction-batches", daemon=True)
        self._thread.start()

    def submit(self, records: list[dict[str, Any]]) -> Future[None]:
        self._last_batch = time.monotonic()
        future = self._writer.submit(records)
        future.add_done_callback(lambda done: done.exception() or self._count(records))
        return future

    def _count(self, records: list[dict[str, Any]]) -> None:
        self._waiting_rows += sum(record["row_count"] for record in records)
        self._committed.set()

    def close(self, timeout: float = 10.0) -> None:
        self._writer.close(timeout)
        self._stopping.set()
        self._committed.set()
        self._thread.join(timeout)

    def _expand_committed(self) -> None:
        while True:
            self._committed.wait()
            while self._waiting_rows < EXPANSION_BACKLOG_ROWS and not self._stopping.is_set():
                quiet = self._last_batch + EXPANSION_QUIET_SECONDS - time.monotonic()
                if quiet <= 0:
                    break
                self._stopping.wait(quiet)
            if self._stopping.is_set():  # what is left is expanded by the next process that opens the log
                return
            self._committed.clear()
            self._waiting_rows = 0
            try:
                expand_batches(self.engine)
            except Exception:  # the records stay committed; the next batch or reader expands them
                logger.exception("expanding the batch journal failed")


def record_ground_truth(engine: Engine, prediction_id: str, ground_truth: str) -> bool:
    """Attach the observed outcome to a logged prediction; False when the prediction id is unknown.

    The id of a batch row not expanded yet expands its batch first: a label may follow its answer at once."""
    if _label(engine, prediction_id, ground_truth):
        return True
    expand_batches(engine, prediction_id[:BATCH_ID_LENGTH])
    return _label(engine, prediction_id, ground_truth)


def _label(engine: Engine, prediction_id: str, ground_truth: str) -> bool:
    with engine.begin() as connection:
        result = connection.execute(
            update(predictions)
            .where(predictions.c.prediction_id == prediction_id)
            .values(ground_truth=ground_truth, ground_truth_ts=utc_now())
        )
    return result.rowcount == 1


def read_predictions(
    url: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model_name: str | None = None,
    labelled_since: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Logged predictions in time order (features as a dict column; ``feature_frame`` expands them).
    ``labelled_since`` adds the older rows whose ground truth arrived since then; ``columns`` selects columns."""
    selected = [predictions.c[name] for name in columns] if columns else list(predictions.c)
    query = select(*selected).order_by(predictions.c.ts)
    if since is not None and labelled_since is not None:
        query = query.where(or_(predictions.c.ts >= since, predictions.c.ground_truth_ts >= labelled_since))
    elif since is not None:
        query = query.where(predictions.c.ts >= since)
    if until is not None:
        query = query.where(predictions.c.ts < until)
    if model_name is not None:
        query = query.where(predictions.c.model_name == model_name)
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return pd.DataFrame(connection.execute(query).mappings().all(), columns=[c.name for c in selected])
    finally:
        engine.dispose()


def feature_frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One column per feature, for comparing served inputs with the training profile."""
    features = rows["features"] if isinstance(rows, pd.DataFrame) else [row["features"] for row in rows]
    return pd.DataFrame.from_records(list(features))
