"""The feature store's side of training: the window's feature rows written offline, point-in-time training
sets joined back from them, and the newest values materialised online for serving."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from feature_repo import definitions
from mlops_core.features import (
    ALL_ENTITIES,
    FeatureRepository,
    FeatureStoreError,
    InvalidFeatures,
    feature_rows,
)


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame
    rows_without_features: int


def write_offline(repository: FeatureRepository, frame: pd.DataFrame, timestamp: str) -> list[Path]:
    """Store the feature rows of a validated window, one Parquet file per day named by its content.

    Re-reading the same days writes the same files, so retraining on overlapping windows adds no duplicates.
    """
    rows = feature_rows(frame, frame[timestamp])
    repository.offline_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for day, day_rows in rows.groupby(rows[definitions.EVENT_TIMESTAMP].dt.date, sort=True):
        digest = hashlib.sha256(pd.util.hash_pandas_object(day_rows, index=False).to_numpy().tobytes())
        written.append(repository.write_parquet(day_rows, f"{day.isoformat()}-{digest.hexdigest()[:16]}"))
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
            "event_timestamp": frame[timestamp].to_numpy(),
            target: frame[target].to_numpy(),
            "_row": range(len(frame)),
        }
    )
    labels["event_timestamp"] = pd.to_datetime(labels["event_timestamp"], utc=True)
    try:
        joined = repository.store.get_historical_features(entity_df=labels, features=repository.references()).to_df()
    except Exception as exc:
        raise FeatureStoreError(f"the point-in-time join failed: {exc}") from exc
    joined = joined.sort_values("_row", ignore_index=True)
    found = joined[definitions.AS_OF].notna()
    training = joined.loc[found, [definitions.JOIN_KEY, "event_timestamp", *definitions.FEATURES, target]]
    training = training.rename(columns={definitions.JOIN_KEY: entity_id, "event_timestamp": timestamp})
    for name in definitions.INTEGER_FEATURES:
        if training[name].notna().all():
            training[name] = training[name].astype("int64")
    for name in definitions.TEXT_FEATURES:
        training[name] = training[name].astype(object).where(training[name].notna(), None)
    ordered = [c for c in frame.columns if c in training.columns]
    # The file offline store drops some such rows and returns others with empty values: count against the input.
    return TrainingSet(training[ordered].reset_index(drop=True), len(frame) - int(found.sum()))


def materialize(repository: FeatureRepository, start: datetime, end: datetime | None = None) -> None:
    """Load the newest row per entity stamped in [start, end] into the online store (end: now).

    Ending at now, not at the window's end, keeps updates made after the window: the online store overwrites
    without comparing timestamps, so the newest offline row must be the one written.
    """
    end = end or datetime.now(UTC)
    try:
        repository.store.materialize(start_date=start, end_date=end, feature_views=[repository.config.view])
    except Exception as exc:
        raise FeatureStoreError(f"materialising {repository.config.view} failed: {exc}") from exc
    repository.journal.append([ALL_ENTITIES])
