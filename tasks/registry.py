"""Registry tasks: log the run to MLflow, register the version, publish the run summary."""

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mlops_core import registry
from mlops_core.profile import DatasetProfile
from mlops_core.settings import Settings
from stages.data.loading import LoadedData
from stages.data.validation import ValidationOutcome
from stages.promotion.audit import AuditLog
from stages.promotion.registrations import register_in_order
from stages.training.candidates import CandidateRanking, Split
from stages.training.report import training_summary_markdown
from stages.training.tracking import LoggedRun, RegisteredVersion, log_training_run


@task(name="log-to-mlflow", cache_policy=NO_CACHE)
def log_to_mlflow(
    data: LoadedData,
    validation: ValidationOutcome,
    split: Split,
    evaluation: CandidateRanking,
    reference: tuple[DatasetProfile, pd.DataFrame],
    settings: Settings,
) -> LoggedRun:
    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings.mlflow.experiment, settings.artifact_root)
    profile, sample = reference
    run = log_training_run(
        client,
        experiment_id=experiment_id,
        data=data,
        validation=validation,
        split=split,
        candidates=evaluation.candidates,
        best=evaluation.best,
        primary_metric=settings.training.primary_metric,
        profile=profile,
        reference_sample=sample,
        evaluation_rows=settings.promotion.max_eval_rows,
        seed=settings.training.random_seed,
    )
    get_run_logger().info("logged MLflow run %s with model %s", run.run_id, run.model_uri)
    return run


@task(name="register-model-version", cache_policy=NO_CACHE)
def register_model_version(
    run: LoggedRun, data: LoadedData, validation: ValidationOutcome, evaluation: CandidateRanking, settings: Settings
) -> RegisteredVersion:
    client = registry.connect(settings)
    version = register_in_order(
        client,
        AuditLog(settings.audit_url),
        model_name=settings.mlflow.registered_model,
        run=run,
        data=data,
        validation=validation,
        best=evaluation.best,
        primary_metric=settings.training.primary_metric,
    )
    get_run_logger().info("registered %s version %d (semver %s)", version.name, version.version, version.semver)
    return version


@task(name="publish-training-summary", cache_policy=NO_CACHE)
def publish_training_summary(
    version: RegisteredVersion,
    evaluation: CandidateRanking,
    validation: ValidationOutcome,
    data: LoadedData,
    split: Split,
    settings: Settings,
) -> None:
    create_markdown_artifact(
        key="training-summary",
        markdown=training_summary_markdown(version, evaluation.candidates, validation, data, split, settings),
        description=f"{version.name} v{version.version} ({version.semver})",
    )
