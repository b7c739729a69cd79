"""Server tasks retry transient failures with backoff in a real Prefect run, and fail at once on anything else."""

import time

import pytest
from prefect import flow, task

from mlops_core.settings import get_settings
from tasks.retries import server_retries

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_transient_failure_is_retried_with_backoff_and_a_bug_is_not(monkeypatch):
    monkeypatch.setenv("MLOPS_RETRIES__ATTEMPTS", "2")
    monkeypatch.setenv("MLOPS_RETRIES__BACKOFF_SECONDS", "0.5")
    get_settings.cache_clear()
    calls: dict[str, list[float]] = {"flaky": [], "buggy": []}

    @task(**server_retries())
    def flaky() -> str:
        calls["flaky"].append(time.monotonic())
        if len(calls["flaky"]) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "answered"

    @task(**server_retries())
    def buggy() -> None:
        calls["buggy"].append(time.monotonic())
        raise KeyError("no such column")

    @flow
    def talk() -> str:
        return flaky()

    @flow
    def misread() -> None:
        buggy()

    try:
        assert talk() == "answered"
        with pytest.raises(KeyError):
            misread()
    finally:
        get_settings.cache_clear()
    assert flaky.retry_delay_seconds == [0.5, 1.0]  # each retry waits twice as long, on average (jittered)
    first, _, third = calls["flaky"]
    assert third - first > 0.5
    assert len(calls["buggy"]) == 1
