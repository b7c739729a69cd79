"""The champion's reference: the training profile, sample and holdout metrics logged with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_core.profile import DatasetProfile
from stages.monitoring.window import MonitoringError


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
        key.removeprefix(registry.TAG_METRIC_PREFIX): float(value)
        for key, value in champion.tags.items()
        if key.startswith(registry.TAG_METRIC_PREFIX)
    }
    return Reference(
        model=model,
        version=int(champion.version),
        semver=champion.tags.get(registry.TAG_SEMVER, "?"),
        profile=profile,
        sample=pd.read_parquet(sample_path),
        holdout_metrics=metrics,
    )
