"""Training tasks: split, fit candidates (mapped), score them on the holdout and pick the best, profile the reference
data."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from mlops_core.memory import release_free_memory
from mlops_core.profile import DatasetProfile, profile_frame
from mlops_core.settings import CandidateName, Settings
from stages.data.loading import LoadedData
from stages.training.candidates import (
    Candidate,
    CandidateRanking,
    SharedPreprocessing,
    Split,
    fit_candidate,
    score_on_holdout,
    select_best,
    shared_preprocessing,
    training_split,
)

TRAINING_SLOT_PREFIX = "training:"  # one global concurrency limit per registered model


# The limit must exist (created above); a training rides out a Prefect server restart instead of stopping when
# its lease cannot be renewed for a moment (the lease outlives the restart on the server's disk, see
# mlops_core/library_defaults.py); the slot of a training that died is freed when its lease expires.
TRAINING_SLOT_LEASE = {"strict": True, "raise_on_lease_renewal_failure": False, "lease_duration": 300}


def _slot_is_taken(error: ConcurrencySlotAcquisitionError) -> bool:
    """Whether a single acquisition attempt was refused because the slot is held (HTTP 423 Locked), as opposed to
    any other failure to reach or use the server."""
    cause = error.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == httpx.codes.LOCKED


@contextmanager
def one_training_at_a_time(settings: Settings) -> Iterator[None]:
    """Hold the model's training slot (a Prefect global concurrency limit, created with 1 slot when missing and
    then the Prefect UI's to change or deactivate): a training or retraining of the same model waits for it and
    says so in its log; other models train side by side.

    The first attempt is a single request without retries, not a short timeout: the server's refusal (423) is
    what says another training holds the slot, while a timeout would also fire on a slow but free server (two
    trainings starting on a busy machine both said they were held back) and could leave a granted lease unused."""
    name = f"{TRAINING_SLOT_PREFIX}{settings.mlflow.registered_model}"
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
    acquired = False
    try:
        with concurrency(name, max_retries=0, **TRAINING_SLOT_LEASE):
            acquired = True
            yield
        return
    except ConcurrencySlotAcquisitionError as refused:
        if acquired or not _slot_is_taken(refused):
            raise
        get_run_logger().warning(
            "held back: another training of %s holds the concurrency limit %r; waiting for it to finish",
            settings.mlflow.registered_model,
            name,
        )
    with concurrency(name, **TRAINING_SLOT_LEASE):
        get_run_logger().info("concurrency limit %r acquired; training starts", name)
        yield


@task(name="split-holdout", cache_policy=NO_CACHE)
def split_training_data(data: LoadedData, settings: Settings) -> Split:
    split = training_split(data, settings)
    get_run_logger().info("split %s: %d train, %d holdout", split.strategy, len(split.x_train), len(split.x_holdout))
    return split


@task(name="preprocess-for-fits", cache_policy=NO_CACHE)
def preprocess_for_fits(split: Split, settings: Settings) -> SharedPreprocessing | None:
    """The preprocessed training matrix the tree candidates share (one copy instead of one per fit)."""
    shared = shared_preprocessing(settings.training.candidates, split)
    release_free_memory()  # the transformers' intermediate matrices, before the fits allocate theirs
    return shared


# Fits running at once in this process, one semaphore per limit (``max_parallel_candidates``): each fit holds its
# own copy of the training matrix, and two at a time keep 2 cores busy as well as three.
_fit_slots: dict[int, threading.BoundedSemaphore] = {}
_fit_slots_lock = threading.Lock()


def fit_slots(limit: int) -> threading.BoundedSemaphore:
    with _fit_slots_lock:
        return _fit_slots.setdefault(limit, threading.BoundedSemaphore(limit))


@task(name="train-candidate", task_run_name="train-{name}", cache_policy=NO_CACHE)
def train_candidate(
    name: CandidateName, split: Split, seed: int, shared: SharedPreprocessing | None, fits_at_once: int
) -> Candidate:
    """Fit when a slot is free, then score on the holdout: a quick candidate's scoring overlaps the slower ones'
    fits."""
    with fit_slots(fits_at_once):
        fitted = fit_candidate(name, split, seed, shared)
        release_free_memory()  # the fit's own copies of the matrix, before the next fit takes the slot
    candidate = score_on_holdout(fitted, split)
    get_run_logger().info(
        "fitted %s in %.1f s: %s", name, candidate.fit_seconds, {k: round(v, 4) for k, v in candidate.metrics.items()}
    )
    return candidate


@task(name="select-best-candidate", cache_policy=NO_CACHE)
def evaluate_candidates(candidates: list[Candidate], settings: Settings) -> CandidateRanking:
    """The best of the candidates, all scored on the same holdout, by the primary metric."""
    best = select_best(candidates, settings.training.primary_metric)
    get_run_logger().info("best candidate by %s: %s", settings.training.primary_metric, best.name)
    return CandidateRanking(candidates=candidates, best=best)


@task(name="profile-reference-data", cache_policy=NO_CACHE)
def profile_reference_data(data: LoadedData, split: Split, settings: Settings) -> tuple[DatasetProfile, pd.DataFrame]:
    """The training rows' profile and a sample of them: what monitoring will compare live data against."""
    leading = len(split.x_train)
    # A temporal split trains on the window's first rows: a slice of the frame, not a copy of 80 % of it.
    if split.x_train.index.equals(data.frame.index[:leading]):
        train_rows = data.frame.iloc[:leading]
    else:
        train_rows = data.frame.loc[split.x_train.index]
    profile = profile_frame(
        train_rows, feature_columns=data.feature_columns, target=data.target, data_digest=data.digest
    )
    rows = min(settings.training.reference_sample_rows, len(train_rows))
    sample = train_rows.sample(n=rows, random_state=settings.training.random_seed).sort_index()
    return profile, sample
