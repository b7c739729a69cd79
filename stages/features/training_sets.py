"""The feature store's side of training: the window's feature rows written offline, point-in-time training
sets joined back from them, and the newest values materialised online for serving."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, bindparam, select

from feature_repo import definitions
from mlops_core import db, migrations
from mlops_core.features import (
    ALL_ENTITIES,
    FeatureRepository,
    FeatureStoreError,
    InvalidFeatures,
    feature_rows,
)

_metadata = MetaData()
# What the last materialisation wrote online per view and entity (monitoring-history database, its migration
# monitoring_history_0004): the stamp of the row written, in microseconds since the epoch (UTC).
materialisations = Table(
    "feature_materialisations",
    _metadata,
    Column("view", String(200), primary_key=True),
    Column("entity_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_ts_us", BigInteger, nullable=False),
)

# Rows per write to the online store: bounds the memory of one write and lets progress show in the logs.
MATERIALIZE_BATCH_ROWS = 5_000


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame
    rows_without_features: int


@dataclass(frozen=True)
class Materialisation:
    """How many entities had a newest row in the span, and how many of them were written (changed since the last
    materialisation)."""

    entities: int
    written: int


def write_offline(repository: FeatureRepository, frame: pd.DataFrame, timestamp: str) -> list[Path]:
    """Store the feature rows of a validated window, one Parquet file per day named by its content.

    Re-reading the same days writes the same files, so retraining on overlapping windows adds no duplicates.
    """
    rows = feature_rows(frame, frame[timestamp])
    repository.offline_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # Days as midnight stamps (vectorised; ``.dt.date`` would make a Python object per row).
    for day, day_rows in rows.groupby(rows[definitions.EVENT_TIMESTAMP].dt.floor("D"), sort=True):
        digest = hashlib.sha256(pd.util.hash_pandas_object(day_rows, index=False).to_numpy().tobytes())
        written.append(repository.write_parquet(day_rows, f"{day.date().isoformat()}-{digest.hexdigest()[:16]}"))
    return written


def training_set(
    repository: FeatureRepository, frame: pd.DataFrame, *, entity_id: str, timestamp: str, target: str
) -> TrainingSet:
    """The window's labels joined to the feature values recorded at or before each row's timestamp.

    Rows keep their order. A row with no feature row at all is left out and counted, never filled in.
    """
    if entity_id != definitions.JOIN_KEY:
        raise InvalidFeatures([f"the feature view is keyed by {definitions.JOIN_KEY!r}, the data by {entity_id!r}"])
    labels = pd.DataFrame(
        {
            definitions.JOIN_KEY: frame[entity_id].to_numpy(),
            # The array keeps its time zone (to_numpy would make an object array of Timestamps: slow at scale).
            "event_timestamp": pd.to_datetime(frame[timestamp], utc=True).array,
            target: frame[target].to_numpy(),
            "_row": range(len(frame)),
        }
    )
    try:
        joined = repository.store.get_historical_features(entity_df=labels, features=repository.references()).to_arrow()
    except Exception as exc:
        raise FeatureStoreError(f"the point-in-time join failed: {exc}") from exc
    del labels
    # The kept rows are taken in the window's order and its column order in Arrow, then converted once, freeing
    # the Arrow buffers as the conversion goes: no pandas copy of the joined rows (the window is large).
    found = joined[definitions.AS_OF].is_valid().to_numpy(zero_copy_only=False)
    kept = np.flatnonzero(found)
    kept = kept[np.argsort(joined["_row"].to_numpy()[kept], kind="stable")]
    names = {definitions.JOIN_KEY: entity_id, "event_timestamp": timestamp, target: target}
    names.update({name: name for name in definitions.FEATURES})
    ordered = [c for c in frame.columns if c in names.values()]
    renamed = joined.select(list(names)).rename_columns(list(names.values())).select(ordered)
    del joined
    kept_rows = renamed.take(kept)
    del renamed
    training = kept_rows.to_pandas(split_blocks=True, self_destruct=True)
    del kept_rows
    for name in definitions.INTEGER_FEATURES:
        if training[name].notna().all():
            training[name] = training[name].astype("int64")
    for name in definitions.TEXT_FEATURES:
        if training[name].dtype != object:  # a column of nulls only
            training[name] = training[name].astype(object).where(training[name].notna(), None)
    # The file offline store drops some such rows and returns others with empty values: count against the input.
    return TrainingSet(training, len(frame) - int(found.sum()))


def materialize(repository: FeatureRepository, start: datetime, end: datetime | None = None) -> Materialisation:
    """Load the newest row per entity stamped in [start, end] into the online store (end: now), writing only the
    entities whose newest row changed since the last materialisation, ``MATERIALIZE_BATCH_ROWS`` at a time.

    Ending at now, not at the window's end, keeps updates made after the window: the online store overwrites
    without comparing timestamps, so the newest offline row must be the one written. The newest rows come from
    the configured offline store (DuckDB by default, a warehouse by settings); what was last written per entity
    is kept in the monitoring-history database (``MLOPS_MONITORING__STATE_URL``), so a run on a fresh machine
    finds it too: an entity whose newest stamp is the one written then is skipped. Losing the record only costs
    one full rewrite.
    """
    end = end or datetime.now(UTC)
    view = repository.view
    engine = db.engine_for(repository.settings.monitoring_state_url, migrations.MONITORING_HISTORY)
    try:
        newest = newest_rows(repository, start, end)
        entities = len(newest)
        changed = changed_since_last(newest, last_materialised(engine, view.name))
        del newest  # the changed rows are a copy; at a first materialisation of many entities this halves the peak
        for first in range(0, len(changed), MATERIALIZE_BATCH_ROWS):
            batch = changed.iloc[first : first + MATERIALIZE_BATCH_ROWS]
            repository.write_online(batch)
        if len(changed):
            repository.journal.append([ALL_ENTITIES])
            remember_materialised(engine, view.name, changed)
    except Exception as exc:
        raise FeatureStoreError(f"materialising {view.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        engine.dispose()
    return Materialisation(entities=entities, written=len(changed))


def newest_rows(repository: FeatureRepository, start: datetime, end: datetime) -> pd.DataFrame:
    """Each entity's newest offline row stamped in [start, end], pulled by the configured offline store."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    config = repository.store.config
    view = repository.view
    job = get_offline_store_from_config(config.offline_store).pull_latest_from_table_or_query(
        config=config,
        data_source=view.batch_source,
        join_key_columns=[definitions.JOIN_KEY],
        feature_name_columns=[*definitions.FEATURES, definitions.AS_OF],
        timestamp_field=definitions.EVENT_TIMESTAMP,
        created_timestamp_column=None,
        start_date=start,
        end_date=end,
    )
    rows = job.to_df()
    rows[definitions.EVENT_TIMESTAMP] = pd.to_datetime(rows[definitions.EVENT_TIMESTAMP], utc=True)
    rows[definitions.AS_OF] = rows[definitions.EVENT_TIMESTAMP]
    return rows.sort_values(definitions.JOIN_KEY, ignore_index=True)


def _stamp_us(stamps: pd.Series) -> np.ndarray:
    """Stamps as integer microseconds since the epoch (UTC): how the record stores them, compared exactly."""
    return pd.to_datetime(stamps, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy()


def last_materialised(engine: Engine, view: str) -> pd.DataFrame:
    """The stamp (``event_ts_us``) last written online per entity of ``view``; no rows before the first
    materialisation (or once the record is lost)."""
    query = select(materialisations.c.entity_id, materialisations.c.event_ts_us).where(materialisations.c.view == view)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame(rows, columns=[definitions.JOIN_KEY, "event_ts_us"]).astype("int64")


def changed_since_last(newest: pd.DataFrame, written: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``newest`` whose entity was never written or was written with another stamp."""
    last = pd.Series(written["event_ts_us"].to_numpy(), index=written[definitions.JOIN_KEY].to_numpy(), dtype="Int64")
    before = last.reindex(newest[definitions.JOIN_KEY].to_numpy())  # <NA>: never written
    same = before.eq(_stamp_us(newest[definitions.EVENT_TIMESTAMP])).fillna(False).to_numpy(dtype=bool)
    return newest[~same].reset_index(drop=True)


def remember_materialised(engine: Engine, view: str, written: pd.DataFrame) -> None:
    """Record the stamp written per entity of ``written`` (in one transaction); other entities keep theirs."""
    ids = written[definitions.JOIN_KEY].to_numpy().tolist()
    stamps = _stamp_us(written[definitions.EVENT_TIMESTAMP]).tolist()
    match = (materialisations.c.view == view) & (materialisations.c.entity_id == bindparam("entity"))
    with engine.begin() as connection:
        connection.execute(materialisations.delete().where(match), [{"entity": e} for e in ids])
        connection.execute(
            materialisations.insert(),
            [{"view": view, "entity_id": e, "event_ts_us": s} for e, s in zip(ids, stamps, strict=True)],
        )
