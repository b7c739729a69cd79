"""Feature-store tasks: the training set as a point-in-time join, then the newest values into the online store."""

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlops_core.features import FeatureRepository, InvalidFeatures
from mlops_core.memory import release_free_memory
from mlops_core.settings import Settings
from stages.data.loading import LoadedData
from stages.features.training_sets import materialize, training_set, write_offline
from tasks.retries import server_retries


def feature_store_reason(settings: Settings) -> str | None:
    """Why this run trains on the files as read instead of the feature store; None when it uses the store."""
    if not settings.features.enabled:
        return "the feature store is disabled (MLOPS_FEATURES__ENABLED=false)"
    if not (settings.data.entity_id and settings.data.timestamp):
        return "the data has no entity id and timestamp to join on"
    return None


# Safe to repeat: offline files are named by their content, so a retry rewrites the same files; then a Feast read.
@task(name="build-training-set", cache_policy=NO_CACHE, **server_retries())
def build_training_set(data: LoadedData, settings: Settings) -> LoadedData:
    """Store the validated window's feature rows, then join them back as of each row's timestamp."""
    logger = get_run_logger()
    reason = feature_store_reason(settings)
    if reason:
        logger.info("training on the files as read: %s", reason)
        return data
    repository = FeatureRepository(settings)
    repository.apply()
    written = write_offline(repository, data.frame, settings.data.timestamp)
    joined = training_set(
        repository, data.frame, entity_id=settings.data.entity_id, timestamp=settings.data.timestamp, target=data.target
    )
    release_free_memory()  # the join's Arrow and DuckDB buffers, before the split and the fits
    if joined.rows_without_features:
        logger.warning("%d row(s) had no feature row at their timestamp and are left out", joined.rows_without_features)
    logger.info("training set: %d rows joined point-in-time from %d offline file(s)", len(joined.frame), len(written))
    return replace(
        data,
        frame=joined.frame,
        training_set_source=f"feature_store:{settings.features.project}/{settings.features.view}",
        rows_without_features=joined.rows_without_features,
    )


Result = TypeVar("Result")


def at_low_priority(work: Callable[[], Result], niceness: int) -> Result:
    """``work`` in a thread of its own at ``niceness``, the caller waiting for its result or error.

    On Linux the nice value belongs to each thread, so the fits running beside keep their priority; the thread
    ends with the work, since raising a priority back takes privileges a user may not have. Elsewhere (macOS
    would lower the whole process) and at 0, ``work`` runs in the calling thread.
    """
    if niceness == 0 or sys.platform != "linux":
        return work()

    def lower() -> None:  # never above the process's own niceness: that would take privileges too
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, max(niceness, os.getpriority(os.PRIO_PROCESS, thread)))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="low-priority", initializer=lower) as pool:
        return pool.submit(work).result()


# Safe to repeat: the online store is overwritten with the same newest rows.
@task(name="materialise-online-features", cache_policy=NO_CACHE, **server_retries())
def materialise_online_features(data: LoadedData, settings: Settings) -> None:
    """The newest values per entity, from the window's start to now, into the online store for serving."""
    if feature_store_reason(settings):
        return
    start = data.frame[settings.data.timestamp].min().to_pydatetime()
    # Beside the fits on the same cores: they are the flow's critical path, the write is not (it is awaited last).
    done = at_low_priority(
        lambda: materialize(FeatureRepository(settings), start), settings.features.online_write_niceness
    )
    get_run_logger().info(
        "online store: wrote %d of %d entities seen since %s (the others were unchanged since the last run)",
        done.written,
        done.entities,
        start,
    )


@task(name="update-entity-features", cache_policy=NO_CACHE)
def update_entity_features(updates: list[dict[str, Any]], settings: Settings) -> list[int]:
    """Write each update in order; the first invalid one stops the run (the ones before it stay written)."""
    repository = FeatureRepository(settings)
    key = settings.data.entity_id or "entity_id"
    for index, update in enumerate(updates):
        entity_id = update.get(key)
        if isinstance(entity_id, bool) or not isinstance(entity_id, int):
            raise InvalidFeatures([f"update {index}: {key} must be an integer, got {entity_id!r}"])
        repository.update(entity_id, {k: v for k, v in update.items() if k != key})
    get_run_logger().info("updated the features of %d entities", len(updates))
    return [update[key] for update in updates]
