"""The training flow: load -> validate (gate) -> feature store -> split -> train and score -> pick the best -> log ->
register -> promote, and (beside the fits) the newest features into the online store and the reference profile."""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.run_names import training_run_name
from mlops_core.settings import CandidateName, DataSettings, Settings, get_settings
from stages.promotion.aliases import TrainingOutcome
from stages.training.candidates import CandidateRanking, Split
from tasks.data import load_training_data
from tasks.features import build_training_set, materialise_online_features
from tasks.promotion import gate_and_promote
from tasks.registry import (
    log_to_mlflow,
    measure_holdout_intervals,
    publish_model_card,
    publish_training_summary,
    register_model_version,
)
from tasks.training import (
    evaluate_candidates,
    one_training_at_a_time,
    preprocess_for_fits,
    profile_reference_data,
    split_training_data,
    train_candidate,
)
from tasks.validation import validate_training_data


def run_settings(
    data_source: str | None = None,
    window_days: int | None = None,
    candidates: list[CandidateName] | None = None,
    registered_model: str | None = None,
    suite: str | None = None,
    data: DataSettings | None = None,
) -> Settings:
    """The process settings with this run's parameters applied (what a user sets in the Prefect UI, or the
    retraining trigger passes from the alerting model's event)."""
    settings = get_settings()
    data_section = (data or settings.data).model_copy(
        update={k: v for k, v in {"source": data_source, "window_days": window_days}.items() if v is not None}
    )
    training = settings.training.model_copy(update={"candidates": candidates} if candidates else {})
    mlflow = settings.mlflow.model_copy(update={"registered_model": registered_model} if registered_model else {})
    validation = settings.validation.model_copy(update={"suite": suite} if suite else {})
    # Re-validate so paths are made absolute and parameters are type-checked like environment values.
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "data": data_section.model_dump(),
            "training": training.model_dump(),
            "mlflow": mlflow.model_dump(),
            "validation": validation.model_dump(),
        }
    )


def candidate_task_runner(settings: Settings) -> TaskRunner:
    """Threads by default: scikit-learn releases the GIL, so they beat Dask processes on one machine.

    With ``task_runner="dask"`` candidates go to the cluster at ``dask_address``, or to a local cluster of
    threads: local worker processes would each start a temporary Prefect server when no API is configured.
    """
    training = settings.training
    if training.task_runner == "threads":
        # A thread per candidate (at most max_parallel_candidates fit at once, the others wait for a slot, see
        # tasks/training.py), and two for the reference profile and the online-store write beside the fits.
        return ThreadPoolTaskRunner(max_workers=len(training.candidates) + 2)
    from prefect_dask import DaskTaskRunner

    if training.dask_address:
        return DaskTaskRunner(address=training.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "processes": False,
            "n_workers": 1,
            "threads_per_worker": training.max_parallel_candidates,
            "dashboard_address": None,
            "local_directory": str(settings.state_dir / "dask"),
        }
    )


@flow(name="training", task_runner=candidate_task_runner(get_settings()), flow_run_name=training_run_name)
def training_flow(
    data_source: str | None = None,
    window_days: int | None = None,
    candidates: list[CandidateName] | None = None,
    reason: str | None = None,
    registered_model: str | None = None,
    suite: str | None = None,
    data: DataSettings | None = None,
) -> TrainingOutcome:
    """Train candidates on the newest data window, register the best, and promote it if it beats the champion.

    Bad data stops the flow at loading or at the Great Expectations gate with nothing registered and nothing
    written to the feature store. The model trains on a point-in-time join of the feature store, as served; the
    window's newest values go to the online store while the candidates fit (they depend on the data, not the model).
    Trainings of one registered model run one at a time (a Prefect concurrency limit); a run held back says so.

    Args:
        data_source: A directory of dated batch files (YYYY-MM-DD.parquet or .csv) or one CSV/Parquet file;
            empty: the configured source (MLOPS_DATA__SOURCE).
        window_days: Train on the newest N daily batches only; empty: the configured window
            (MLOPS_DATA__WINDOW_DAYS), all batches when that is unset too.
        candidates: Model families to train and compare on the holdout (logistic_regression, random_forest,
            hist_gradient_boosting); empty: the configured list (MLOPS_TRAINING__CANDIDATES).
        reason: Why the run was started, when something other than a person or the schedule started it; the
            retraining trigger sets it from the alert (e.g. "drift (drift share 0.56 >= 0.3 ...)") and the run
            is then named "retrain after <reason>".
        registered_model: Train and register this registered model; empty: the configured one
            (MLOPS_MLFLOW__REGISTERED_MODEL). The retraining trigger passes the alerting model's.
        suite: The Great Expectations suite that gates the data; empty: MLOPS_VALIDATION__SUITE.
        data: The model's whole data section (source, target, id and time columns, window); empty: the
            configured one (MLOPS_DATA__*). ``data_source`` and ``window_days`` still override it.
    """
    settings = run_settings(data_source, window_days, candidates, registered_model, suite, data)
    with one_training_at_a_time(settings):
        return train_register_promote(settings)


def train_candidates(split: Split, settings: Settings) -> CandidateRanking:
    """The candidates fitted side by side, the tree models on one shared preprocessed matrix (released when they
    are done), each scored on the holdout; the best of them."""
    shared = preprocess_for_fits(split, settings)
    fitted = train_candidate.map(
        settings.training.candidates,
        split=unmapped(split),
        seed=settings.training.random_seed,
        shared=unmapped(shared),
        fits_at_once=settings.training.max_parallel_candidates,
    )
    return evaluate_candidates(fitted, settings)


def train_register_promote(settings: Settings) -> TrainingOutcome:
    data = load_training_data(settings)
    validation = validate_training_data(data, settings)
    data = build_training_set(data, settings)
    split = split_training_data(data, settings)
    reference = profile_reference_data.submit(data, split, settings)
    # The split holds the rows now: the steps after it read only the window's description and time span.
    data = data.without_rows(settings.data.timestamp)
    online = materialise_online_features.submit(data, settings)
    evaluation = train_candidates(split, settings)
    intervals = measure_holdout_intervals.submit(evaluation, split, settings)  # the card's, beside the logging
    run = log_to_mlflow(data, validation, split, evaluation, reference.result(), settings)
    version = register_model_version(run, data, validation, evaluation, settings)
    publish_training_summary(version, evaluation, validation, data, split, settings)
    decision = gate_and_promote(settings, version.version)
    publish_model_card(version, decision, evaluation, intervals.result(), validation, data, split, settings)
    online.result()
    return TrainingOutcome(registered=version, promotion=decision)
