"""The reference profile of a model's training data.

Logged with every model version so that the service can check inputs against the training range and the
monitoring flow can compare live data with the reference without rescanning the training set.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 100


class NumericProfile(BaseModel):
    kind: Literal["numeric"] = "numeric"
    dtype: str
    null_fraction: float
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: dict[str, float] = Field(default_factory=dict, description="quantile level -> value")
    bin_edges: list[float] = Field(default_factory=list, description="quantile-spaced histogram edges")
    bin_fractions: list[float] = Field(default_factory=list)


class CategoricalProfile(BaseModel):
    kind: Literal["categorical"] = "categorical"
    dtype: str
    null_fraction: float
    frequencies: dict[str, float] = Field(default_factory=dict, description="most frequent values, by share")
    other_fraction: float = 0.0


ColumnProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class DatasetProfile(BaseModel):
    rows: int
    data_digest: str
    target: str
    target_rate: float | None = None
    feature_columns: list[str]
    columns: dict[str, ColumnProfile]
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def _numeric(column: pd.Series) -> NumericProfile:
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    present = values[~np.isnan(values)]
    null_fraction = float(1 - len(present) / max(len(values), 1))
    if len(present) == 0:
        return NumericProfile(
            dtype=str(column.dtype), null_fraction=null_fraction, min=None, max=None, mean=None, std=None
        )
    levels = np.array(QUANTILES)
    quantiles = np.quantile(present, levels)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, HISTOGRAM_BINS + 1)))
    counts = np.histogram(present, bins=edges)[0] if len(edges) > 1 else np.array([len(present)])
    return NumericProfile(
        dtype=str(column.dtype),
        null_fraction=null_fraction,
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std()),
        quantiles={str(q): float(v) for q, v in zip(levels, quantiles, strict=True)},
        bin_edges=[float(e) for e in edges],
        bin_fractions=[float(c) for c in counts / len(present)],
    )


def _categorical(column: pd.Series) -> CategoricalProfile:
    shares = column.astype("string").value_counts(normalize=True, dropna=True)
    top = shares.head(TOP_CATEGORIES)
    return CategoricalProfile(
        dtype=str(column.dtype),
        null_fraction=float(column.isna().mean()),
        frequencies={str(k): float(v) for k, v in top.items()},
        other_fraction=float(shares.iloc[TOP_CATEGORIES:].sum()),
    )


def profile_frame(frame: pd.DataFrame, *, feature_columns: list[str], target: str, data_digest: str) -> DatasetProfile:
    columns: dict[str, NumericProfile | CategoricalProfile] = {}
    for name in feature_columns:
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        columns[name] = _numeric(column) if numeric else _categorical(column)
    target_rate = None
    if pd.api.types.is_numeric_dtype(frame[target]):
        target_rate = float(frame[target].mean())
    return DatasetProfile(
        rows=len(frame),
        data_digest=data_digest,
        target=target,
        target_rate=target_rate,
        feature_columns=feature_columns,
        columns=columns,
    )
