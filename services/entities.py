"""Rows for prediction by entity id, read from the feature store's online side through a cache.

The store is opened on the first request in a thread (Feast takes seconds to import), so a worker that never
serves by entity never pays for it and one that does keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

from mlops_core.features import CachedFeatures, EntityFeatures, FeatureRepository
from mlops_core.settings import get_settings

_lock = threading.Lock()
_features: CachedFeatures | None = None


def _open() -> CachedFeatures:
    global _features
    with _lock:
        if _features is None:
            settings = get_settings()
            _features = CachedFeatures(
                FeatureRepository(settings), settings.features.cache_ttl_seconds, settings.features.cache_max_entities
            )
        return _features


async def entity_features(entity_id: int) -> EntityFeatures:
    """The entity's features (cached); raises UnknownEntity or FeatureStoreError from ``mlops_core.features``."""
    features = _features or await asyncio.to_thread(_open)
    return features.get(entity_id)


def model_row(features: EntityFeatures, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The model's inputs from the stored values (a stored NaN is a missing value), and the names not stored."""
    row = {}
    for name in names:
        if name in features.values:
            value = features.values[name]
            row[name] = None if isinstance(value, float) and math.isnan(value) else value
    return row, [name for name in names if name not in features.values]
