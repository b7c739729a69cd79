"""Covariate drift of the window against the champion's training sample, per column and for the dataset.

Drift is measured with PSI per column (Evidently), whose value does not grow with the sample size the way a
K-S p-value does; the reference side is the training sample logged with the model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_core.profile import DatasetProfile, NumericProfile
from mlops_core.settings import MonitoringSettings
from stages.monitoring.window import MonitoringError


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: dict[str, float]
    scores: dict[str, float]
    missing_share: float
    snapshot: Any = field(repr=False)


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, profile: DatasetProfile, policy: MonitoringSettings
) -> DriftResult:
    """Evidently: drift per column and for the dataset, and missing values, on the chosen columns only."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DatasetMissingValueCount, DriftedColumnsCount, RowCount, ValueDrift

    names = profile.feature_columns
    numeric = [n for n in names if isinstance(profile.columns[n], NumericProfile)]
    categorical = [n for n in names if n not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    method, threshold = policy.drift_method, policy.column_drift_threshold
    report = Report(
        [
            DriftedColumnsCount(
                columns=names, method=method, threshold=threshold, drift_share=policy.drift_share_threshold
            ),
            *(ValueDrift(column=n, method=method, threshold=threshold) for n in names),
            DatasetMissingValueCount(),
            RowCount(),
        ]
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(_typed(current, numeric, categorical), data_definition=definition),
        reference_data=Dataset.from_pandas(_typed(reference[names], numeric, categorical), data_definition=definition),
    )
    scores: dict[str, float] = {}
    drift_share = math.nan
    missing_share = 0.0
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            scores[metric["config"]["column"]] = float(metric["value"])
        elif kind == "DriftedColumnsCount":
            drift_share = float(metric["value"]["share"])
        elif kind == "DatasetMissingValueCount":
            missing_share = float(metric["value"]["share"])
    if math.isnan(drift_share):
        raise MonitoringError("Evidently returned no dataset drift share")
    drifted = {n: s for n, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s >= threshold}
    return DriftResult(drift_share, drifted, scores, missing_share, snapshot)


def _typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    frame[categorical] = frame[categorical].astype(object).where(frame[categorical].notna(), None)
    return frame
