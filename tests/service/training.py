"""Registering model versions fast for service tests: the training steps as plain functions, no Prefect."""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

from mlops_core import registry
from mlops_core.data import load_window
from mlops_core.generator import write_batches
from mlops_core.profile import profile_frame
from mlops_core.settings import Settings
from mlops_core.tracking import log_training_run, register_version
from mlops_core.training import evaluate, fit_candidate, split_holdout
from mlops_core.validation import ValidationOutcome


def _optional_logging_args() -> dict[str, int]:
    # The promotion work adds holdout-sampling arguments to log_training_run; pass them when it takes them.
    accepted = inspect.signature(log_training_run).parameters
    return {k: v for k, v in {"evaluation_rows": 500, "seed": 0}.items() if k in accepted}


def register_model(settings: Settings, data_dir: Path, *, seed: int, rows: int = 3000) -> int:
    """Generate a few days of data, fit a logistic regression, log and register it; returns the version."""
    write_batches(data_dir, rows=rows, days=3, start=date(2026, 11, 1), seed=seed)
    data = load_window(
        data_dir, target=settings.data.target, entity_id=settings.data.entity_id, timestamp=settings.data.timestamp
    )
    split = split_holdout(
        data.frame,
        features=data.feature_columns,
        target=data.target,
        holdout_fraction=0.2,
        timestamp=settings.data.timestamp,
        seed=seed,
    )
    candidate = fit_candidate("logistic_regression", split, seed)
    candidate.metrics = evaluate(candidate.pipeline, split.x_holdout, split.y_holdout)
    validation = ValidationOutcome(suite="test", success=True, evaluated=0)
    train_rows = data.frame.loc[split.x_train.index]
    profile = profile_frame(
        train_rows, feature_columns=data.feature_columns, target=data.target, data_digest=data.digest
    )
    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings.mlflow.experiment, settings.artifact_root)
    run = log_training_run(
        client,
        experiment_id=experiment_id,
        data=data,
        validation=validation,
        split=split,
        candidates=[candidate],
        best=candidate,
        primary_metric="roc_auc",
        profile=profile,
        reference_sample=train_rows.head(200),
        **_optional_logging_args(),
    )
    version = register_version(
        client,
        model_name=settings.mlflow.registered_model,
        run=run,
        data=data,
        validation=validation,
        best=candidate,
        primary_metric="roc_auc",
    )
    return version.version
