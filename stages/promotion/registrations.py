"""Registration in order: racing trainings (two workers of a pool) get distinct semantic versions.

The semantic version is computed from the versions registered so far, so computing it and registering must be
one step per model: both run under the audit log's exclusive lock of the model, and the registration is
recorded in the audit log in the same transaction, so the log lists registrations in the order they happened.
"""

from __future__ import annotations

from mlflow import MlflowClient

from stages.data.loading import LoadedData
from stages.data.validation import ValidationOutcome
from stages.promotion.audit import AuditLog, Registration
from stages.training.candidates import Candidate
from stages.training.tracking import LoggedRun, RegisteredVersion, register_version


def register_in_order(
    client: MlflowClient,
    audit: AuditLog,
    *,
    model_name: str,
    run: LoggedRun,
    data: LoadedData,
    validation: ValidationOutcome,
    best: Candidate,
    primary_metric: str,
) -> RegisteredVersion:
    """Register a new version of ``model_name`` under the model's audit lock and record it there."""
    with audit.exclusive(model_name) as connection:
        version = register_version(
            client,
            model_name=model_name,
            run=run,
            data=data,
            validation=validation,
            best=best,
            primary_metric=primary_metric,
        )
        audit.record_registration(
            connection,
            Registration(model=model_name, version=version.version, semver=version.semver, training_run_id=run.run_id),
        )
    return version
