"""Loading a training window from dated batch files or one user file, with a digest of exactly what was read."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

SUPPORTED_SUFFIXES = (".parquet", ".csv")
_DATED_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})")


class DataLoadError(ValueError):
    """The data could not be loaded as a training window; the message says which file and why."""


@dataclass
class LoadedData:
    frame: pd.DataFrame
    digest: str
    files: list[str]
    target: str
    feature_columns: list[str] = field(default_factory=list)
    # Where the rows the model trains on came from: the files as read, or a point-in-time join in the feature store.
    training_set_source: str = "files"
    rows_without_features: int = 0
    # The window's row count once its rows are released (``without_rows``); None while ``frame`` holds them all.
    released_rows: int | None = None

    @property
    def rows(self) -> int:
        return len(self.frame) if self.released_rows is None else self.released_rows

    def without_rows(self, timestamp: str | None) -> LoadedData:
        """The window as the steps after the split read it (files, digest, columns, row count, time span), without
        its rows: ``frame`` keeps only the rows with the earliest and the latest ``timestamp`` (the first row when
        there is none), so the window no longer sits in memory beside the candidates' fits."""
        if self.released_rows is not None:
            return self
        if timestamp and timestamp in self.frame.columns and self.frame[timestamp].notna().any():
            stamps = self.frame[timestamp]
            kept = sorted({int(stamps.argmin()), int(stamps.argmax())})
        else:
            kept = list(range(min(1, len(self.frame))))
        return replace(self, frame=self.frame.iloc[kept].copy(), released_rows=len(self.frame))


def content_digest(frame: pd.DataFrame) -> str:
    """SHA-256 over column names, dtypes and every value, independent of the index."""
    h = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        h.update(f"{name}:{dtype};".encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64).tobytes())
    return h.hexdigest()


def batch_files(source: Path, window_days: int | None = None) -> list[Path]:
    """The files a source stands for: itself, or the dated batches of a directory (newest N days)."""
    if not source.exists():
        raise DataLoadError(f"data source {source} does not exist")
    if source.is_file():
        if source.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DataLoadError(f"{source}: unsupported file type {source.suffix!r}; use CSV or Parquet")
        return [source]
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not files:
        raise DataLoadError(f"data directory {source} holds no .parquet or .csv batch files")
    if window_days is not None:
        dates = sorted({_batch_date(p) for p in files})
        keep = set(dates[-window_days:])
        files = [p for p in files if _batch_date(p) in keep]
    return files


def _batch_date(path: Path) -> date:
    match = _DATED_NAME.match(path.name)
    if not match:
        raise DataLoadError(f"{path}: batch files in a data directory must be named YYYY-MM-DD.<suffix>")
    try:
        return date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise DataLoadError(f"{path}: {exc}") from exc


def read_file(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataLoadError(f"{path} is empty") from exc
    except Exception as exc:  # pyarrow, parser and decoding errors all mean the same to the user
        raise DataLoadError(f"{path} could not be read: {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise DataLoadError(f"{path} holds no rows")
    return frame


def _normalise(frame: pd.DataFrame, timestamp: str | None) -> pd.DataFrame:
    # Categories become plain strings so CSV and Parquet sources give the same dtypes to the gate and the model.
    for name in frame.columns[frame.dtypes == "category"]:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    if timestamp and timestamp in frame.columns and not isinstance(frame[timestamp].dtype, pd.DatetimeTZDtype):
        try:
            frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True)
        except (ValueError, TypeError) as exc:
            raise DataLoadError(f"timestamp column {timestamp!r} holds values that are not dates: {exc}") from exc
    return frame


def load_window(
    source: Path,
    *,
    target: str,
    entity_id: str | None = None,
    timestamp: str | None = None,
    window_days: int | None = None,
) -> LoadedData:
    """Read the training window; refuses empty, unreadable or target-less data with the reason."""
    files = batch_files(source, window_days)
    frames = [read_file(p) for p in files]
    columns = list(frames[0].columns)
    for path, frame in zip(files[1:], frames[1:], strict=True):
        if list(frame.columns) != columns:
            missing = sorted(set(columns) - set(frame.columns))
            extra = sorted(set(frame.columns) - set(columns))
            raise DataLoadError(f"{path} has other columns than {files[0].name}: missing {missing}, extra {extra}")
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if target not in frame.columns:
        raise DataLoadError(f"target column {target!r} not found; the data has columns {columns}")
    frame = _normalise(frame, timestamp)
    if timestamp and timestamp in frame.columns and not frame[timestamp].is_monotonic_increasing:
        # Dated batches are usually in time order already: sorting them anyway copies the whole window.
        frame = frame.sort_values(timestamp, kind="stable", ignore_index=True)
    excluded = {target, entity_id, timestamp}
    features = [c for c in frame.columns if c not in excluded]
    if not features:
        raise DataLoadError(f"the data has no feature columns besides {sorted(c for c in excluded if c)}")
    return LoadedData(
        frame=frame,
        digest=content_digest(frame),
        files=[str(p) for p in files],
        target=target,
        feature_columns=features,
    )
