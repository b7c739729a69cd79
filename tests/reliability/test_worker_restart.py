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
from tests.reliability.load import Background
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


def test_killed_workers_are_replaced_without_5xx(served: World, feature_rows, figures) -> None:
    workers = wait_until(lambda: both if len(both := ready_workers(served)) == 2 else None, 60, "two workers ready")
    per_kill = []
    for kill in range(KILLS):
        victim = sorted(workers)[kill % 2]
        survivor = workers - {victim}
        load = Background(
            served.server.url, served.keys["user"], feature_rows, CONNECTIONS, fresh_connections=True, pause=PAUSE
        )
        with load:
            wait_until(lambda: len(load.outcome.acknowledged) >= scaled(50), 60, "load running")
            os.kill(victim, signal.SIGKILL)
            replacement = wait_until(
                lambda: (ready_workers(served) - workers) or None, 120, f"a replacement for worker {victim} ready"
            )
            restarted_at = len(load.outcome.acknowledged)
            wait_until(lambda: len(load.outcome.acknowledged) >= restarted_at + scaled(50), 60, "load after the restart")
        workers = survivor | replacement
        assert len(workers) == 2, workers
        outcome = load.outcome
        server_errors = sum(n for status, n in outcome.statuses.items() if status >= 500)
        per_kill.append((outcome.requests, server_errors, outcome.statuses[0], outcome))
    figures["worker restart: SIGKILL x5 under load"] = {
        "requests": "/".join(str(requests) for requests, *_ in per_kill),
        "5xx": "/".join(str(errors) for _, errors, *_ in per_kill),
        "transport errors": "/".join(str(dropped) for _, _, dropped, _ in per_kill),
    }
    for kill, (_, server_errors, dropped, outcome) in enumerate(per_kill, 1):
        detail = f"kill {kill}: {dict(outcome.refusals)}, {dict(outcome.failures)}"
        assert server_errors == 0, detail
        assert dropped <= CONNECTIONS, detail
        assert set(outcome.statuses) <= {200, 0}, detail
