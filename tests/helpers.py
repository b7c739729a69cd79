"""Test helpers shared by several test modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
