"""Shared fixtures: every test gets its own state directory, MLflow store and copy of the GX context."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import mlops_core  # noqa: F401  (telemetry off before any library loads)
from mlops_core.generator import write_batches
from mlops_core.settings import PROJECT_ROOT, Settings, get_settings

COMMITTED_GX = PROJECT_ROOT / "great_expectations"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the session (about 12 s once, then about 1.5 s per flow)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def gx_context(tmp_path: Path) -> Path:
    """A private copy of the committed GX context, so runs write their results and Data Docs elsewhere."""
    target = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


@pytest.fixture
def settings(tmp_path: Path, gx_context: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at temp state, as a user would configure them through the environment."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_VALIDATION__CONTEXT_DIR", str(gx_context))
    # Two fast candidates keep flow tests quick; the default set is exercised by the slow test.
    monkeypatch.setenv("MLOPS_TRAINING__CANDIDATES", '["logistic_regression", "hist_gradient_boosting"]')
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def loan_batches(settings: Settings) -> Path:
    """Four days of generated loan applications in the configured data directory."""
    write_batches(settings.data_source, rows=4_000, days=4, start=date(2026, 11, 1), seed=7)
    return settings.data_source


def register_quickly(settings: Settings, source: Path, *, candidate: str = "logistic_regression", drop: tuple = ()):
    """Train and register one version without Prefect or the GX gate: the flow's steps as plain calls."""
    from mlops_core import registry
    from mlops_core.data import load_window
    from mlops_core.profile import profile_frame
    from mlops_core.tracking import log_training_run, register_version
    from mlops_core.training import Evaluation, evaluate, fit_candidate, split_holdout
    from mlops_core.validation import ValidationOutcome

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
        seed=0,
    )
    fitted = fit_candidate(candidate, split, seed=0)
    fitted.metrics = evaluate(fitted.pipeline, split.x_holdout, split.y_holdout)
    evaluation = Evaluation(candidates=[fitted], best=fitted)
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
    return register_version(
        client,
        model_name=settings.mlflow.registered_model,
        run=run,
        data=data,
        validation=validation,
        best=fitted,
        primary_metric="roc_auc",
    )
