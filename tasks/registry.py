"""Registry tasks: log the run to MLflow, register the version, publish the run summary and the model card."""

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mlops_core import registry
from mlops_core.profile import DatasetProfile
from mlops_core.settings import Settings
from stages.data.loading import LoadedData
from stages.data.validation import ValidationOutcome
from stages.promotion.aliases import PromotionDecision
from stages.promotion.audit import AuditLog
from stages.promotion.model_card import build_model_card, holdout_intervals
from stages.promotion.registrations import register_in_order
from stages.training.candidates import CandidateRanking, Split
from stages.training.model_card import MODEL_CARD_ARTIFACT, model_card_markdown, version_description
from stages.training.report import run_artifact_link, training_summary_markdown
from stages.training.tracking import LoggedRun, RegisteredVersion, log_training_run
from tasks.retries import server_retries


# Safe to repeat: a retry logs a new run (a failed attempt's run is marked FAILED) and only the run returned
# here is ever registered.
@task(name="log-to-mlflow", cache_policy=NO_CACHE, **server_retries())
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


# No retries: a retry after a lost answer would register a second version of the same run.
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


@task(name="measure-holdout-intervals", cache_policy=NO_CACHE)
def measure_holdout_intervals(
    evaluation: CandidateRanking, split: Split, settings: Settings
) -> dict[str, tuple[float, float]]:
    """The model card's bootstrap intervals of the best candidate's holdout metrics (seconds of CPU, so the flow
    runs this beside the MLflow log)."""
    promotion = settings.promotion
    return holdout_intervals(
        evaluation.best,
        split,
        confidence=promotion.confidence,
        resamples=promotion.bootstrap_resamples,
        max_rows=promotion.max_eval_rows,
        seed=settings.training.random_seed,
    )


# Safe to repeat: the card overwrites the same run artifact and the description is set, not appended.
@task(name="publish-model-card", cache_policy=NO_CACHE, **server_retries())
def publish_model_card(
    version: RegisteredVersion,
    decision: PromotionDecision,
    evaluation: CandidateRanking,
    bounds: dict[str, tuple[float, float]],
    validation: ValidationOutcome,
    data: LoadedData,
    split: Split,
    settings: Settings,
) -> str:
    """Write the version's model card to its training run and link it from the version's description."""
    card = build_model_card(
        version=version,
        decision=decision,
        best=evaluation.best,
        bounds=bounds,
        split=split,
        data=data,
        validation=validation,
        timestamp=settings.data.timestamp,
        intended_use=settings.training.intended_use,
        confidence=settings.promotion.confidence,
    )
    client = registry.connect(settings)
    client.log_text(version.run_id, model_card_markdown(card), MODEL_CARD_ARTIFACT)
    link = run_artifact_link(settings, version, MODEL_CARD_ARTIFACT)
    client.update_model_version(version.name, str(version.version), description=version_description(card, link))
    get_run_logger().info("model card of %s v%d: %s", version.name, version.version, link)
    return link
