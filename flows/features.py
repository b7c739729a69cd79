"""The feature-update flow: new entity values from upstream systems into the feature store."""

from __future__ import annotations

from typing import Any

from prefect import flow

from mlops_core.settings import get_settings
from tasks.features import update_entity_features


@flow(name="features")
def feature_update_flow(updates: list[dict[str, Any]]) -> list[int]:
    """Each update is ``{"applicant_id": ..., <feature>: <value>, ...}``; values not given keep their current value.

    An invalid update fails the run before anything is written; served answers use the new values at once.
    """
    return update_entity_features(updates, get_settings())
