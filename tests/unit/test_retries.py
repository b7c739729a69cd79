"""Which failures the server tasks retry: transient ones only, also when wrapped by the library."""

import httpx
import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

from tasks.retries import is_transient


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner``, as MLflow wraps a failed HTTP request."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - implicit chaining is what is tested
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("case", "exc", "transient"),
    [
        ("refused connection", ConnectionRefusedError(111, "refused"), True),
        ("timeout", TimeoutError(), True),
        ("requests connection error", requests.exceptions.ConnectionError("down"), True),
        ("httpx transport error", httpx.ConnectError("down"), True),
        ("database locked", sqlalchemy.exc.OperationalError("stmt", {}, Exception("database is locked")), True),
        (
            "MLflow wrapping a refused connection",
            _wrapped(requests.exceptions.ConnectionError("down"), MlflowException("API request failed")),
            True,
        ),
        ("MLflow: temporarily unavailable", MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE), True),
        ("MLflow: bad parameter", MlflowException("bad", error_code=INVALID_PARAMETER_VALUE), False),
        ("MLflow: not found", MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST), False),
        ("a bug", KeyError("column"), False),
        ("disk full", OSError(28, "No space left on device"), False),
        (
            "HTTP 404",
            httpx.HTTPStatusError("404", request=httpx.Request("GET", "http://x"), response=httpx.Response(404)),
            False,
        ),
    ],
)
def test_is_transient(case, exc, transient):
    assert is_transient(exc) is transient, case
