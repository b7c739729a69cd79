"""The feature-update flow: new entity values from upstream systems into the feature store."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.run_names import feature_update_run_name
from mlops_core.settings import get_settings
from tasks.features import update_entity_features


@flow(name="features", flow_run_name=feature_update_run_name)
def feature_update_flow(updates: list[dict[str, Any]]) -> list[int]:
    """Write new feature values of entities into the feature store; served answers use them at once.

    An invalid update fails the run before anything is written.

    Args:
        updates: One object per entity, e.g. [{"applicant_id": 7, "credit_score": 640}]; features not given
            keep their current value.
    """
    return update_entity_features(updates, get_settings())
