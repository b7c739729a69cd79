"""Covariate drift of the window against the champion's training sample, per column and for the dataset.

The verdict is the rule of ``stages.monitoring.psi`` (PSI over the practical threshold and over sampling noise
at this window's size, Bonferroni over columns); Evidently draws the report users read. The reference side
is the training sample logged with the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_core.profile import DatasetProfile, NumericProfile
from mlops_core.settings import MonitoringSettings
from stages.monitoring.psi import DriftNull
from stages.monitoring.window import MonitoringError


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: dict[str, float]
    scores: dict[str, float]
    missing_share: float
    snapshot: Any = field(repr=False)
    critical_values: dict[str, float] = field(default_factory=dict)


def drift_null(reference: pd.DataFrame, profile: DatasetProfile, policy: MonitoringSettings) -> DriftNull:
    """The reference's null of PSI, per column, for the profile's feature columns."""
    numeric, categorical = _kinds(profile)
    return DriftNull.of(reference, numeric, categorical, policy.drift_false_alarm_rate)


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, profile: DatasetProfile, policy: MonitoringSettings
) -> DriftResult:
    """The rule's verdict per column and the drift share; Evidently's report and missing values for users."""
    verdicts = drift_null(reference, profile, policy).verdicts(current, policy.column_drift_threshold)
    snapshot, missing_share = _evidently_report(reference, current, profile, policy)
    return DriftResult(
        drift_share=verdicts.drift_share,
        drifted_columns=verdicts.drifted,
        scores=verdicts.scores,
        missing_share=missing_share,
        snapshot=snapshot,
        critical_values=verdicts.critical_values,
    )


def _kinds(profile: DatasetProfile) -> tuple[list[str], list[str]]:
    names = profile.feature_columns
    numeric = [n for n in names if isinstance(profile.columns[n], NumericProfile)]
    return numeric, [n for n in names if n not in numeric]


def _evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, profile: DatasetProfile, policy: MonitoringSettings
) -> tuple[Any, float]:
    """Evidently: per-column distributions and PSI (its own bins, uncorrected), and missing values."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DatasetMissingValueCount, RowCount, ValueDrift

    names = profile.feature_columns
    numeric, categorical = _kinds(profile)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    method, threshold = policy.drift_method, policy.column_drift_threshold
    report = Report(
        [
            *(ValueDrift(column=n, method=method, threshold=threshold) for n in names),
            DatasetMissingValueCount(),
            RowCount(),
        ]
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(_typed(current, numeric, categorical), data_definition=definition),
        reference_data=Dataset.from_pandas(_typed(reference[names], numeric, categorical), data_definition=definition),
    )
    missing = [m for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("DatasetMissingValueCount")]
    if not missing:
        raise MonitoringError("Evidently returned no missing-value count")
    return snapshot, float(missing[0]["value"]["share"])


def _typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    frame[categorical] = frame[categorical].astype(object).where(frame[categorical].notna(), None)
    return frame


SCORE = "score"


@dataclass(frozen=True)
class PredictionDrift:
    """The served score distribution against the champion's scores of its own reference sample."""

    psi: float
    critical_value: float
    rows: int
    drifted: bool


def prediction_drift(
    reference_scores: np.ndarray, window_scores: pd.Series, policy: MonitoringSettings
) -> PredictionDrift:
    """The input columns' rule on the one score column: PSI over the threshold and over its null."""
    null = DriftNull.of(pd.DataFrame({SCORE: reference_scores}), [SCORE], [], policy.drift_false_alarm_rate)
    verdicts = null.verdicts(pd.DataFrame({SCORE: window_scores.dropna().to_numpy()}), policy.column_drift_threshold)
    return PredictionDrift(
        psi=verdicts.scores[SCORE],
        critical_value=verdicts.critical_values[SCORE],
        rows=verdicts.rows,
        drifted=SCORE in verdicts.drifted,
    )
