"""Blue-green on one machine: the real procedure (`mlops bluegreen`) against two real `bentoml serve` colours.

Blue and green run on their own ports with the same registry (a real MLflow server) and stores. Green is
staged with version 2 while blue serves version 1; the switch moves traffic, alias and audit row together.
A version that does not exist, a version the service refuses to serve and a smoke bound no server can meet
each leave traffic and alias where they were, with the reason; the switch back works.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from mlops_core import registry
from mlops_core.settings import get_settings
from stages.promotion.audit import AuditLog
from tests.service.conftest import registry_settings, service_environment, start_mlflow, stop_group
from tests.service.training import register_model
from tooling.cli import app
from tooling.processes import free_port

pytestmark = pytest.mark.slow


def break_artifacts(client, artifacts: Path, name: str, version: int) -> None:
    """Delete a registered version's model files in the server's artifact store: it exists but cannot load."""
    model_id = client.get_model_version(name, str(version)).source.removeprefix("models:/")
    (directory,) = [p for p in artifacts.rglob(model_id) if p.is_dir()]
    shutil.rmtree(directory)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bluegreen")
    port = free_port()
    mlflow = start_mlflow(root, port)
    url = f"http://127.0.0.1:{port}"
    settings = registry_settings(root / "state", url)
    versions = [register_model(settings, root / f"data-{seed}", seed=seed) for seed in (1, 2, 3)]
    client = registry.connect(settings)
    break_artifacts(client, root / "artifacts", settings.mlflow.registered_model, versions[2])
    ports = {"blue": free_port(), "green": free_port()}
    env = service_environment(
        settings.state_dir,
        MLOPS_MLFLOW__TRACKING_URI=url,
        MLOPS_BLUEGREEN__LOCAL_PORTS=json.dumps(ports),
        MLOPS_BLUEGREEN__READY_TIMEOUT_SECONDS="240",
    )
    world = {"settings": settings, "client": client, "versions": versions, "env": env, "root": root}
    try:
        yield world
    finally:
        mlops(world, "bluegreen", "down")
        stop_group(mlflow)


def mlops(world, *args: str, **env: str) -> Result:
    """The CLI with the environment a user would set (in this process: the same code, no interpreter start-up)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env={**world["env"], **env})
    finally:
        get_settings.cache_clear()


def state(world) -> dict:
    return json.loads((world["settings"].stack_dir / "bluegreen.json").read_text())


def champion(world) -> int:
    settings = world["settings"]
    return int(world["client"].get_model_version_by_alias(settings.mlflow.registered_model, "champion").version)


def moves(world) -> list:
    settings = world["settings"]
    return AuditLog(settings.audit_url).history(settings.mlflow.registered_model)


def serving(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=5).json()["model"]["version"]


def assert_refused(result: Result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("switch refused, traffic and alias unchanged: "), result.stderr
    for word in words:
        assert word in line, line
    return line


def test_switch_stages_a_version_checks_it_and_switches_back(world):
    v1, v2, broken = world["versions"]

    first = mlops(world, "bluegreen", "switch", str(v1), "--reason", "first deployment", "--by", "release-bot")
    assert first.exit_code == 0, first.output
    assert state(world)["live"] == "blue" and champion(world) == v1
    blue_url = state(world)["live_url"]
    assert serving(blue_url) == v1

    second = mlops(world, "bluegreen", "switch", str(v2), "--reason", "v2 passed the gate", "--by", "release-bot")
    assert second.exit_code == 0, second.output
    live = state(world)
    green_url = live["live_url"]
    assert live["live"] == "green" and green_url != blue_url
    assert champion(world) == v2
    move = moves(world)[-1]
    assert (move.from_version, move.to_version, move.action, move.actor) == (v1, v2, "promote", "release-bot")
    assert move.reason == "blue-green promote to green: v2 passed the gate"
    assert move.details["colour"] == "green" and move.details["smoke"]["requests"] == 20
    assert serving(green_url) == v2
    time.sleep(3)  # three registry polls after the alias moved: blue is pinned, it stays on version 1
    assert serving(blue_url) == v1
    rows, blue_pid = len(moves(world)), state(world)["colours"]["blue"]["pid"]

    def unchanged() -> None:
        assert state(world)["live"] == "green" and champion(world) == v2 and len(moves(world)) == rows

    missing = mlops(world, "bluegreen", "switch", "99", "--reason", "typo")
    assert_refused(missing, "version 99", "does not exist")
    unchanged()
    assert state(world)["colours"]["blue"]["pid"] == blue_pid  # nothing was touched

    refused = mlops(world, "bluegreen", "switch", str(broken), "--reason", "files lost")
    assert_refused(refused, f"blue cannot serve version {broken}", "refused")
    unchanged()
    assert serving(green_url) == v2

    slow = mlops(world, "bluegreen", "switch", str(v1), "--reason", "too slow", MLOPS_BLUEGREEN__SMOKE_P95_MS="0.001")
    assert_refused(slow, "smoke latency p95", "exceeds the bound of 0.001 ms")
    unchanged()

    back = mlops(world, "bluegreen", "rollback", "--reason", "v2 misbehaves", "--by", "on-call")
    assert back.exit_code == 0, back.output
    assert state(world)["live"] == "blue" and champion(world) == v1
    move = moves(world)[-1]
    assert (move.from_version, move.to_version, move.action, move.actor) == (v2, v1, "rollback", "on-call")
    assert serving(blue_url) == v1 and serving(green_url) == v2

    status = mlops(world, "bluegreen", "status")
    assert status.stdout.splitlines()[0] == f"live: blue {blue_url}", status.stdout
