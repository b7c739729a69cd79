"""Faults under load: a service worker killed, the registry stopped and started again.

SIGKILL of the whole server is covered by ``tests/service/test_service_durability.py``; here one worker dies
while the other keeps serving and BentoML starts a replacement.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops_core.prediction_log import read_predictions
from tests.reliability.conftest import World, scaled, serve_champion
from tests.reliability.load import Background
from tests.service.conftest import start_mlflow, stop_group, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(mlflow_server, tmp_path_factory) -> Iterator[World]:
    url, _, _ = mlflow_server
    world = serve_champion(tmp_path_factory.mktemp("faults"), url)
    try:
        yield world
    finally:
        stop_group(world.server.process)


SEEN: list[dict] = []  # the last readiness answers, shown when a wait times out


def readiness(world: World) -> dict:
    answer = httpx.get(f"{world.server.url}/readyz", timeout=15).json()
    SEEN[:] = [*SEEN[-3:], answer]
    return answer


def workers(world: World, answers: int = 12) -> set[int]:
    """Worker pids seen in ``answers`` readiness answers on new connections."""
    return {readiness(world)["worker"] for _ in range(answers)}


def every_worker(world: World, check, answers: int = 8) -> bool:
    return all(check(readiness(world)) for _ in range(answers))


def prediction_log_is_whole(world: World) -> int:
    """The log's integrity check passes and every row is complete; returns the row count."""
    path = world.settings.prediction_log_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    log = read_predictions(world.settings.prediction_log_url)
    required = ["prediction_id", "ts", "model_version", "input_hash", "features", "prediction", "probabilities"]
    assert not log[required].isna().any().any(), "a partial row"
    return len(log)


def test_sigkill_of_a_worker_under_load(served: World, feature_rows, figures) -> None:
    # A worker takes connections only once its model is loaded: wait until both answer.
    before = wait_until(lambda: seen if len(seen := workers(served)) == 2 else None, 120, "both workers answering")
    champion = readiness(served)["model"]["version"]
    victim = min(before)
    with Background(served.server.url, served.keys["user"], feature_rows) as load:
        wait_until(lambda: len(load.outcome.acknowledged) >= scaled(100), 60, "load running")
        os.kill(victim, signal.SIGKILL)
        killed_at = len(load.outcome.acknowledged)
        replacement = wait_until(lambda: (workers(served, 4) - before) or None, 120, "a replacement worker answering")
        wait_until(lambda: len(load.outcome.acknowledged) >= killed_at + scaled(200), 60, "load after the restart")
    outcome = load.outcome
    rows = prediction_log_is_whole(served)
    log = set(read_predictions(served.settings.prediction_log_url)["prediction_id"])
    lost = set(outcome.acknowledged) - log
    figures["fault: SIGKILL of a worker"] = {
        "requests": outcome.requests,
        "acknowledged": len(outcome.acknowledged),
        "unanswered (connection dropped)": outcome.statuses[0],
        "other errors": outcome.errors - outcome.statuses[0],
        "acknowledged missing from the log": len(lost),
        "log rows": rows,
    }
    assert not lost, f"{len(lost)} acknowledged predictions missing"
    assert set(outcome.statuses) <= {200, 0}, dict(outcome.statuses)
    wait_until(
        lambda: any(
            r["worker"] in replacement and r["status"] == "ready" and r["model"]["version"] == champion
            for r in (readiness(served) for _ in range(8))
        ),
        120,
        "the replacement worker serving the champion",
    )


@pytest.fixture
def restarted() -> Iterator[list]:
    """Servers a test starts again after stopping them; stopped after the test."""
    processes: list = []
    yield processes
    for process in processes:
        stop_group(process)


def test_registry_stopped_under_load_degrades_then_recovers(
    served: World, mlflow_server, restarted, feature_rows, figures
) -> None:
    url, process, artifacts = mlflow_server
    champion = readiness(served)["model"]["version"]
    with Background(served.server.url, served.keys["user"], feature_rows) as load:
        wait_until(lambda: len(load.outcome.acknowledged) >= scaled(50), 60, "load running")
        stop_group(process)
        try:
            wait_until(
                lambda: every_worker(served, lambda r: r["status"] == "degraded" and "registry" in r["reasons"][0]),
                60,
                "every worker degraded",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last answers: {SEEN}") from None
        during = len(load.outcome.acknowledged)
        time.sleep(3)
        assert len(load.outcome.acknowledged) > during, "serving stopped with the registry"
        restarted.append(start_mlflow(Path(artifacts).parent, int(url.rsplit(":", 1)[1])))
        wait_until(lambda: every_worker(served, lambda r: r["status"] == "ready"), 60, "every worker ready again")
    outcome = load.outcome
    figures["fault: registry stopped"] = {
        "requests": outcome.requests,
        "errors": outcome.errors,
        "answered while degraded": len(outcome.acknowledged) - during,
    }
    assert outcome.errors == 0, dict(outcome.statuses)
    assert set(outcome.versions) == {champion}
