"""Retries with exponential backoff for tasks that talk to servers and are safe to repeat.

Only transient failures are retried (a refused or dropped connection, a timeout, a locked or unreachable
database, a server that says it is temporarily unavailable); a bad request or a bug fails at once. Tasks that
register a version, move an alias, trigger a run or record a decision get no retries: a retry after a lost
answer would do it twice (a second version, a second alias move or audit entry, a second run).
"""

from __future__ import annotations

from typing import Any

import httpx
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from mlops_core.settings import get_settings

_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    httpx.TransportError,
    sqlalchemy.exc.OperationalError,
)
# Delays vary randomly around their value (at most 50% longer), so retries of parallel tasks do not arrive together.
_RETRY_JITTER = 0.5


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is a transient server or connection failure.

    The chain matters: MLflow wraps a refused connection in an ``MlflowException`` raised while handling it.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, _TRANSIENT):
            return True
        if isinstance(exc, MlflowException) and exc.error_code == ErrorCode.Name(TEMPORARILY_UNAVAILABLE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _retry_on_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failure itself is what is being classified
        return is_transient(exc)
    return False


def server_retries() -> dict[str, Any]:
    """``@task`` options for a task that talks to servers and is safe to repeat."""
    policy = get_settings().retries
    return {
        "retries": policy.attempts,
        "retry_delay_seconds": exponential_backoff(backoff_factor=policy.backoff_seconds)(policy.attempts)
        if policy.attempts
        else 0,
        "retry_jitter_factor": _RETRY_JITTER,
        "retry_condition_fn": _retry_on_transient,
    }
