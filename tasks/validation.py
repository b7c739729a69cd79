"""Validation tasks: the Great Expectations gate."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mlops_core.settings import Settings
from stages.data.loading import LoadedData
from stages.data.report import validation_failure_markdown
from stages.data.validation import DataValidationError, ValidationOutcome, validate


@task(name="validate-with-great-expectations", cache_policy=NO_CACHE)
def validate_training_data(data: LoadedData, settings: Settings) -> ValidationOutcome:
    """Stops the flow when any expectation fails; the failure report is left as an artifact."""
    outcome = validate(data.frame, settings.validation.context_dir, settings.validation.suite)
    logger = get_run_logger()
    if not outcome.success:
        create_markdown_artifact(
            key="data-validation-failure",
            markdown=validation_failure_markdown(outcome),
            description="Great Expectations gate failed: nothing was registered",
        )
        logger.error(outcome.summary())
        raise DataValidationError(outcome)
    logger.info(outcome.summary())
    return outcome
