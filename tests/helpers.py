"""Test helpers shared by several test modules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_core.settings import Settings


@dataclass
class TrainedRun:
    """A training run logged to MLflow and not registered yet: what registration needs."""

    run: Any
    data: Any
    validation: Any
    best: Any


def train_quickly(
    settings: Settings, source: Path, *, candidate: str = "logistic_regression", drop: tuple = (), seed: int = 0
) -> TrainedRun:
    """Train and log one run without Prefect or the GX gate: the flow's steps as plain calls."""
    from mlops_core import registry
    from mlops_core.profile import profile_frame
    from stages.data.loading import load_window
    from stages.data.validation import ValidationOutcome
    from stages.training.candidates import CandidateRanking, fit_candidate, score_on_holdout, split_holdout
    from stages.training.tracking import log_training_run

    data = load_window(
        source, target=settings.data.target, entity_id=settings.data.entity_id, timestamp=settings.data.timestamp
    )
    if drop:
        data.frame = data.frame.drop(columns=list(drop))
        data.feature_columns = [c for c in data.feature_columns if c not in drop]
    split = split_holdout(
        data.frame,
        features=data.feature_columns,
        target=data.target,
        holdout_fraction=0.25,
        timestamp=settings.data.timestamp,
        seed=seed,
    )
    fitted = score_on_holdout(fit_candidate(candidate, split, seed=seed), split)
    evaluation = CandidateRanking(candidates=[fitted], best=fitted)
    validation = ValidationOutcome(suite="none", success=True, evaluated=0)
    client = registry.connect(settings)
    experiment = registry.ensure_experiment(client, settings.mlflow.experiment, settings.artifact_root)
    profile = profile_frame(
        data.frame, feature_columns=data.feature_columns, target=data.target, data_digest=data.digest
    )
    run = log_training_run(
        client,
        experiment_id=experiment,
        data=data,
        validation=validation,
        split=split,
        candidates=evaluation.candidates,
        best=fitted,
        primary_metric="roc_auc",
        profile=profile,
        reference_sample=data.frame.head(500),
        evaluation_rows=settings.promotion.max_eval_rows,
        seed=0,
    )
    return TrainedRun(run=run, data=data, validation=validation, best=fitted)


def register_trained(settings: Settings, trained: TrainedRun):
    """Register a logged run as the training flow does."""
    from mlops_core import registry
    from stages.promotion.audit import AuditLog
    from stages.promotion.registrations import register_in_order

    return register_in_order(
        registry.connect(settings),
        AuditLog(settings.audit_url),
        model_name=settings.mlflow.registered_model,
        run=trained.run,
        data=trained.data,
        validation=trained.validation,
        best=trained.best,
        primary_metric="roc_auc",
    )


def register_quickly(
    settings: Settings, source: Path, *, candidate: str = "logistic_regression", drop: tuple = (), seed: int = 0
):
    """Train and register one version without Prefect or the GX gate."""
    return register_trained(settings, train_quickly(settings, source, candidate=candidate, drop=drop, seed=seed))


def retraining_triggers() -> list:
    """The retraining deployment's triggers as prefect.yaml declares them."""
    from prefect.events import DeploymentEventTrigger

    from tooling.stack import declared_deployment

    return [DeploymentEventTrigger(**trigger) for trigger in declared_deployment("retrain")["triggers"]]


def log_predictions(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    with_truth=False,
    when=None,
    malformed=0,
    version=None,
    latency_ms=1.0,
    scores=None,
) -> list[str]:
    """Rows as the service writes them: the champion's real predictions on ``frame`` (or ``scores``), logged as
    ``version`` (default: the champion's) of the configured registered model; their ids."""
    import mlflow.sklearn
    import numpy as np

    from mlops_core import registry
    from mlops_core.prediction_log import engine_for, predictions
    from stages.data.generator import ENTITY_ID, TARGET, TIMESTAMP

    name = settings.mlflow.registered_model
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    served = version
    version = registry.connect(settings).get_model_version_by_alias(name, "champion")
    features = frame.drop(columns=[TARGET, ENTITY_ID, TIMESTAMP])
    for column in features.select_dtypes("category"):
        features[column] = features[column].astype(object).where(features[column].notna(), None)
    proba = model.predict_proba(features) if scores is None else np.c_[1 - scores, scores]
    when = when or datetime.now(UTC) - timedelta(minutes=5)
    rows = []
    for i, (record, p) in enumerate(zip(features.to_dict("records"), proba, strict=True)):
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
        rows.append(
            {
                "prediction_id": str(uuid.uuid4()),
                "ts": when,
                "model_name": name,
                "model_version": int(version.version) if served is None else served,
                "model_semver": version.tags["semver"],
                "variant": "champion",
                "input_hash": "x",
                "features": clean if i >= malformed else {"age": "forty"},
                "prediction": str(int(p[1] >= 0.5)),
                "confidence": float(max(p)),
                "probabilities": {"0": float(p[0]), "1": float(p[1])},
                "latency_ms": latency_ms,
                "ground_truth": str(int(frame[TARGET].iloc[i])) if with_truth else None,
                "ground_truth_ts": when if with_truth else None,
            }
        )
    engine = engine_for(settings.prediction_log_url)
    with engine.begin() as connection:
        connection.execute(predictions.insert(), rows)
    engine.dispose()
    return [row["prediction_id"] for row in rows]
