"""The prediction log: every answered prediction, written by the service, read by monitoring.

SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL in production) by settings. Class labels and
ground truth are stored as text so that integer and string targets share one schema.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import JSON, Column, DateTime, Engine, Float, Integer, MetaData, String, Table, select, update

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
    Column("paired_id", String(36), index=True),
)


def engine_for(url: str) -> Engine:
    """An engine on the prediction log at ``url``, upgraded to its newest schema."""
    return db.engine_for(url, migrations.PREDICTION_LOG)


def canonical_json(features: Mapping[str, Any]) -> bytes:
    """The row as compact JSON with sorted keys (NaN as null): what is logged, and what its hash is taken of."""
    return orjson.dumps(features, option=orjson.OPT_SORT_KEYS, default=str)


def input_hash(features: Mapping[str, Any]) -> str:
    """SHA-256 of the row in canonical JSON: equal inputs hash equal whatever the key order."""
    return hashlib.sha256(canonical_json(features)).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


def _driver_insert(engine: Engine, table: Table) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]], bool]:
    """The table's insert in the driver's own form: its SQL, each column with the type's bind conversion (JSON
    encoding, SQLite's datetime text), and whether parameters are positional.

    The statement is compiled once, and a batch goes to the driver's ``executemany`` directly: SQLAlchemy's
    per-row parameter processing cost more than the database's own work for a batch of thousands of rows.
    """
    dialect = engine.dialect
    columns = [column for column in table.columns if column is not table.autoincrement_column]
    compiled = table.insert().compile(dialect=dialect, column_keys=[column.name for column in columns])
    binds = {column.name: column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns}
    order = list(compiled.positiontup or []) if dialect.positional else [column.name for column in columns]
    return str(compiled), [(name, binds[name]) for name in order], bool(dialect.positional)


class GroupWriter:
    """Inserts rows from many concurrent requests in one transaction per batch (group commit).

    A caller waits on the returned future before it answers, so an acknowledged row is committed; while one
    batch commits, the next one collects, so the cost per row falls as load rises.
    """

    def __init__(self, engine: Engine, table: Table, *, max_batch: int = 512) -> None:
        self.engine = engine
        self._table = table
        self._max_batch = max_batch
        self._statement, self._columns, self._positional = _driver_insert(engine, table)
        self._names = [name for name, _ in self._columns]
        self._queue: queue.SimpleQueue[tuple[list[dict[str, Any]], Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"{table.name}-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> Future[None]:
        future: Future[None] = Future()
        self._queue.put((rows, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = [row.get(name) if bind is None else bind(row.get(name)) for name, bind in self._columns]
        return tuple(values) if self._positional else dict(zip(self._names, values, strict=True))

    def _write(self, batch: list[tuple[list[dict[str, Any]], Future[None]]]) -> None:
        try:
            parameters = [self._parameters(row) for rows, _ in batch for row in rows]
            with self.engine.begin() as connection:
                connection.exec_driver_sql(self._statement, parameters)
        except Exception as exc:  # every waiting request learns its rows were not stored
            for _, future in batch:
                future.set_exception(exc)
            return
        for _, future in batch:
            future.set_result(None)


def record_ground_truth(engine: Engine, prediction_id: str, ground_truth: str) -> bool:
    """Attach the observed outcome to a logged prediction; False when the prediction id is unknown."""
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
) -> pd.DataFrame:
    """Logged predictions in time order (features as a dict column; ``feature_frame`` expands them)."""
    query = select(predictions).order_by(predictions.c.ts)
    if since is not None:
        query = query.where(predictions.c.ts >= since)
    if until is not None:
        query = query.where(predictions.c.ts < until)
    if model_name is not None:
        query = query.where(predictions.c.model_name == model_name)
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return pd.DataFrame(connection.execute(query).mappings().all(), columns=list(predictions.c.keys()))
    finally:
        engine.dispose()


def feature_frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One column per feature, for comparing served inputs with the training profile."""
    features = rows["features"] if isinstance(rows, pd.DataFrame) else [row["features"] for row in rows]
    return pd.DataFrame.from_records(list(features))
