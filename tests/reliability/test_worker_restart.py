"""A service worker killed five times in a row under load: no request is answered 5xx while its replacement starts.

The load opens a new connection for every request, so every request goes through ``accept()`` on the socket the
workers share and reaches a replacement worker as soon as it listens. A replacement that took connections before
its model was loaded answered them ``503 not_ready``; only the requests in flight on the killed worker may fail,
and they fail without an answer (a transport error), never with a 5xx.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import World, scaled, serve_champion
from tests.reliability.load import Background, Outcome
from tests.service.conftest import stop_group, wait_until

pytestmark = pytest.mark.slow
KILLS = 5
CONNECTIONS = 4  # at most this many requests are in flight on the killed worker
PAUSE = 0.2  # seconds before each request of a connection: at most 20 requests a second


@pytest.fixture(scope="module")
def served(mlflow_server, tmp_path_factory) -> Iterator[World]:
    url, _, _ = mlflow_server  # models are downloaded over HTTP, as from a remote registry
    world = serve_champion(tmp_path_factory.mktemp("worker-restart"), url)
    try:
        yield world
    finally:
        stop_group(world.server.process)


def ready_workers(world: World, answers: int = 8) -> set[int]:
    """Pids of the workers that answered /readyz ready, each on a new connection."""
    seen = set()
    for _ in range(answers):
        response = httpx.get(f"{world.server.url}/readyz", timeout=15)
        if response.status_code == 200 and response.json()["status"] == "ready":
            seen.add(response.json()["worker"])
    return seen


def kill_under_load(world: World, workers: set[int], victim: int, rows: list[dict]) -> tuple[set[int], Outcome]:
    """SIGKILL ``victim`` under load; returns the workers serving afterwards and what the clients saw."""
    load = Background(world.server.url, world.keys["user"], rows, CONNECTIONS, fresh_connections=True, pause=PAUSE)
    with load:
        wait_until(lambda: len(load.outcome.acknowledged) >= scaled(50), 60, "load running")
        os.kill(victim, signal.SIGKILL)
        replacement = wait_until(
            lambda: (ready_workers(world) - workers) or None, 120, f"a replacement for worker {victim} ready"
        )
        restarted_at = len(load.outcome.acknowledged)
        wait_until(lambda: len(load.outcome.acknowledged) >= restarted_at + scaled(50), 60, "load after the restart")
    return (workers - {victim}) | replacement, load.outcome


def test_killed_workers_are_replaced_without_5xx(served: World, feature_rows, figures) -> None:
    workers = wait_until(lambda: both if len(both := ready_workers(served)) == 2 else None, 60, "two workers ready")
    outcomes = []
    for kill in range(KILLS):
        workers, outcome = kill_under_load(served, workers, sorted(workers)[kill % 2], feature_rows)
        assert len(workers) == 2, workers
        outcomes.append(outcome)
    server_errors = [sum(n for status, n in o.statuses.items() if status >= 500) for o in outcomes]
    figures["worker restart: SIGKILL x5 under load"] = {
        "requests": "/".join(str(o.requests) for o in outcomes),
        "5xx": "/".join(map(str, server_errors)),
        "transport errors": "/".join(str(o.statuses[0]) for o in outcomes),
    }
    for kill, outcome in enumerate(outcomes, 1):
        detail = f"kill {kill}: {dict(outcome.refusals)}, {dict(outcome.failures)}"
        assert set(outcome.statuses) <= {200, 0}, detail  # no 5xx, nor any other refusal
        assert outcome.statuses[0] <= CONNECTIONS, detail  # only what was in flight on the killed worker
