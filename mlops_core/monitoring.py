"""Drift and quality checks of logged predictions against the champion's training reference.

Scale: a window larger than ``max_rows`` is sampled uniformly in the database before any JSON is parsed,
so cost and memory follow the sample, not the window. The sampling error is bounded: by the
Dvoretzky-Kiefer-Wolfowitz inequality every column's empirical CDF is within
``sqrt(ln(2/0.05) / (2 n))`` of the window's with 95 % probability (0.0061 at n = 50,000), far below what
moves a PSI of 0.1. Drift is measured with PSI per column (Evidently), whose value does not grow with the
sample size the way a K-S p-value does; the reference side is the training sample logged with the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Engine

from mlops_core import migrations
from mlops_core.prediction_log import engine_for, predictions
from mlops_core.profile import DatasetProfile, NumericProfile
from mlops_core.settings import MonitoringSettings

Status = Literal["ok", "alert", "skipped", "failed"]


class MonitoringError(RuntimeError):
    """The check could not be made; never to be read as "no drift"."""


def sampling_error_bound(rows: int, confidence: float = 0.95) -> float:
    """DKW bound on the largest gap between a sample's and the window's empirical CDF."""
    return math.sqrt(math.log(2 / (1 - confidence)) / (2 * max(rows, 1)))


# --- check history: windows, episodes, cooldown ---------------------------------------------------------

_metadata = MetaData()
checks = Table(
    "monitoring_checks",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("drift_share", Float),
    Column("quality_drop", Float),
    Column("episode", Integer, nullable=False, default=0),
    Column("triggered", Boolean, nullable=False, default=False),
    Column("retraining_run_id", String(64)),
    Column("reason", Text, nullable=False),
)


class CheckRecord(BaseModel):
    id: int | None = None
    checked_at: datetime
    model: str
    window_start: datetime
    window_end: datetime
    status: Status
    drift_share: float | None = None
    quality_drop: float | None = None
    episode: int = 0
    triggered: bool = False
    retraining_run_id: str | None = None
    reason: str


def _utc(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


class CheckHistory:
    """Past checks, so each window starts where the last successful one ended and alerts are de-duplicated."""

    def __init__(self, url: str):
        self.engine: Engine = engine_for(url, migrations.MONITORING_HISTORY)

    def _records(self, model: str, *conditions: Any, limit: int | None = None) -> list[CheckRecord]:
        query = select(checks).where(checks.c.model == model, *conditions).order_by(checks.c.id.desc())
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            CheckRecord(
                **{
                    **row,
                    **{k: _utc(row[k]) for k in ("checked_at", "window_start", "window_end")},
                }
            )
            for row in rows
        ]

    def last(self, model: str) -> CheckRecord | None:
        found = self._records(model, checks.c.status.in_(["ok", "alert"]), limit=1)
        return found[0] if found else None

    def last_trigger(self, model: str) -> CheckRecord | None:
        found = self._records(model, checks.c.triggered.is_(True), limit=1)
        return found[0] if found else None

    def episode_triggered(self, model: str, episode: int) -> bool:
        return bool(self._records(model, checks.c.episode == episode, checks.c.triggered.is_(True), limit=1))

    def record(self, record: CheckRecord) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(checks.insert().values(**record.model_dump(exclude={"id"})))
        return int(result.inserted_primary_key[0])

    def all(self, model: str) -> list[CheckRecord]:
        return list(reversed(self._records(model)))


def check_window(
    history: CheckHistory, model: str, policy: MonitoringSettings, now: datetime
) -> tuple[datetime, datetime]:
    """From the end of the last successful check (or the configured window) until now."""
    last = history.last(model)
    start = last.window_end if last else now - timedelta(hours=policy.window_hours)
    return start, now


def next_episode(history: CheckHistory, model: str, alert: bool) -> tuple[int, bool]:
    """(episode number, whether this episode already triggered): an episode is a run of alerting checks."""
    last = history.last(model)
    if last is None:
        return (1 if alert else 0), False
    if alert and last.status == "alert":
        return last.episode, history.episode_triggered(model, last.episode)
    return (last.episode + 1 if alert else last.episode), False


# --- the window's rows --------------------------------------------------------------------------------


@dataclass
class WindowSample:
    features: pd.DataFrame
    rows_in_window: int
    malformed: int
    malformed_reasons: dict[str, int]
    labels: pd.Series | None = None
    positive_probability: pd.Series | None = None

    @property
    def rows(self) -> int:
        return len(self.features)


def count_window(engine: Engine, model: str, start: datetime, end: datetime) -> int:
    query = select(func.count()).select_from(predictions).where(*_window(model, start, end))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _window(model: str, start: datetime, end: datetime) -> list[Any]:
    # Shadow rows repeat inputs already logged for the served variant.
    return [
        predictions.c.model_name == model,
        predictions.c.ts >= start,
        predictions.c.ts < end,
        predictions.c.variant != "shadow",
    ]


def sample_window(
    engine: Engine, model: str, start: datetime, end: datetime, profile: DatasetProfile, max_rows: int
) -> WindowSample:
    """A uniform sample of the window (drawn by the database), parsed and checked against the profile."""
    total = count_window(engine, model, start, end)
    query = select(
        predictions.c.features,
        predictions.c.probabilities,
        predictions.c.ground_truth,
    ).where(*_window(model, start, end))
    if total > max_rows:
        # Oversample a little so the sample reaches max_rows, then trim.
        fraction = min(1.0, max_rows * 1.05 / total)
        if engine.dialect.name == "sqlite":
            query = query.where((func.abs(func.random()) % 1_000_000) < int(fraction * 1_000_000))
        else:
            query = query.where(func.random() < fraction)
    with engine.connect() as connection:
        rows = connection.execute(query).all()[:max_rows]
    return _parse(rows, total, profile)


def _parse(rows: list[Any], total: int, profile: DatasetProfile) -> WindowSample:
    names = profile.feature_columns
    numeric = {n for n, c in profile.columns.items() if isinstance(c, NumericProfile)}
    good_features, probabilities, truths = [], [], []
    reasons: dict[str, int] = {}

    def refuse(reason: str) -> None:
        reasons[reason] = reasons.get(reason, 0) + 1

    for features, probs, truth in rows:
        if not isinstance(features, dict):
            refuse("features are not an object")
            continue
        missing = [n for n in names if n not in features]
        if missing:
            refuse("missing feature columns")
            continue
        bad = [n for n in numeric if not _is_number_or_null(features[n])]
        if bad:
            refuse("non-numeric value in a numeric column")
            continue
        good_features.append({n: features[n] for n in names})
        probabilities.append(probs if isinstance(probs, dict) else {})
        truths.append(truth)
    frame = pd.DataFrame.from_records(good_features, columns=names)
    for name in names:
        frame[name] = pd.to_numeric(frame[name]) if name in numeric else frame[name].astype(object)
    sample = WindowSample(
        features=frame,
        rows_in_window=total,
        malformed=sum(reasons.values()),
        malformed_reasons=reasons,
    )
    labelled = [i for i, t in enumerate(truths) if t is not None]
    if labelled:
        positive = _positive_class(probabilities)
        sample.labels = pd.Series([int(str(truths[i]) == positive) for i in labelled])
        sample.positive_probability = pd.Series(
            [float(probabilities[i].get(positive, np.nan)) for i in labelled], dtype=float
        )
    return sample


def _is_number_or_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float)


def _positive_class(probabilities: list[dict[str, float]]) -> str:
    """The second class in sorted order, as in scikit-learn's ``classes_`` (e.g. "1" of "0"/"1")."""
    classes = sorted({k for p in probabilities for k in p})
    return classes[-1] if classes else "1"


# --- drift and quality ---------------------------------------------------------------------------------


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


@dataclass
class QualityResult:
    labelled_rows: int
    current: dict[str, float]
    holdout: dict[str, float]
    drop: float


def quality_against_holdout(
    sample: WindowSample, holdout_metrics: dict[str, float], policy: MonitoringSettings
) -> QualityResult | None:
    """ROC AUC and accuracy on rows whose ground truth arrived, against the version's holdout figures."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    if sample.labels is None or len(sample.labels) < policy.min_labelled_rows:
        return None
    known = sample.positive_probability.notna()
    truth, probability = sample.labels[known].to_numpy(), sample.positive_probability[known].to_numpy()
    if len(np.unique(truth)) < 2:
        return None
    current = {
        "roc_auc": float(roc_auc_score(truth, probability)),
        "accuracy": float(accuracy_score(truth, (probability >= 0.5).astype(int))),
    }
    holdout = {k: holdout_metrics[k] for k in ("roc_auc", "accuracy") if k in holdout_metrics}
    drop = holdout.get("roc_auc", current["roc_auc"]) - current["roc_auc"]
    return QualityResult(labelled_rows=int(known.sum()), current=current, holdout=holdout, drop=float(drop))


# --- the champion's reference ----------------------------------------------------------------------------


@dataclass
class Reference:
    model: str
    version: int
    semver: str
    profile: DatasetProfile
    sample: pd.DataFrame
    holdout_metrics: dict[str, float]


def champion_reference(client: Any, model: str) -> Reference:
    """The champion's training profile and sample, logged at training time; a clear failure when absent."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlops_core import registry

    try:
        champion = client.get_model_version_by_alias(model, registry.CHAMPION)
    except MlflowException as exc:
        raise MonitoringError(f"no champion of {model!r} in the registry to monitor: {exc.message}") from exc
    run_id = champion.tags.get(registry.TAG_TRAINING_RUN_ID) or champion.run_id
    try:
        profile_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"reference/{registry.PROFILE_FILE}"
        )
        sample_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=registry.REFERENCE_SAMPLE_ARTIFACT
        )
    except (MlflowException, OSError) as exc:
        raise MonitoringError(
            f"champion {model} v{champion.version} has no reference profile/sample in run {run_id}: {exc}"
        ) from exc
    with open(profile_path) as handle:
        profile = DatasetProfile.model_validate_json(handle.read())
    metrics = {
        key.removeprefix("metric."): float(value) for key, value in champion.tags.items() if key.startswith("metric.")
    }
    return Reference(
        model=model,
        version=int(champion.version),
        semver=champion.tags.get(registry.TAG_SEMVER, "?"),
        profile=profile,
        sample=pd.read_parquet(sample_path),
        holdout_metrics=metrics,
    )
