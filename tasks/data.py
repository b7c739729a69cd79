"""Data tasks: load the training window."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlops_core.memory import release_free_memory
from mlops_core.settings import Settings
from stages.data.loading import LoadedData, load_window


@task(name="load-training-window", cache_policy=NO_CACHE)
def load_training_data(settings: Settings) -> LoadedData:
    data = load_window(
        settings.data_source,
        target=settings.data.target,
        entity_id=settings.data.entity_id,
        timestamp=settings.data.timestamp,
        window_days=settings.data.window_days,
    )
    release_free_memory()  # the files' Arrow buffers, now that the window is a frame
    get_run_logger().info(
        "loaded %d rows x %d features from %d file(s), digest %s",
        data.rows,
        len(data.feature_columns),
        len(data.files),
        data.digest[:12],
    )
    return data
