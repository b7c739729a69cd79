"""An acknowledged prediction survives SIGKILL; the refuse policy; the keys CLI."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from mlops_core import registry
from mlops_core.api_keys import KeyStore
from mlops_core.prediction_log import read_predictions
from mlops_core.settings import get_settings
from tests.service.conftest import registry_settings, service_environment, start_service, stop_group
from tests.service.training import register_model
from tooling.cli import UserError, app


@pytest.mark.slow
def test_acknowledged_predictions_survive_sigkill(tmp_path, feature_rows):
    settings = registry_settings(tmp_path / "state")
    version = register_model(settings, tmp_path / "data", seed=5)
    registry.connect(settings).set_registered_model_alias(
        settings.mlflow.registered_model, registry.CHAMPION, str(version)
    )
    key = KeyStore(settings.key_store).create("durability")[1]
    env = service_environment(settings.state_dir, MLOPS_SERVICE__OUT_OF_RANGE="refuse")
    server = start_service(env, tmp_path / "service.log")
    try:
        with server.client(key) as client:
            refused = client.post("/predict", json={**feature_rows[0], "annual_income": 1e12})
            assert refused.status_code == 422
            assert refused.json()["detail"][0]["field"] == "annual_income"

        def call(row: dict) -> str:
            with server.client(key) as client:
                response = client.post("/predict", json=row)
                assert response.status_code == 200, response.text
                return response.json()["prediction_id"]

        def call_batch(rows: list[dict]) -> list[str]:
            with server.client(key) as client:
                response = client.post("/predict_batch", json={"rows": rows})
                assert response.status_code == 200, response.text
                return [answer["prediction_id"] for answer in response.json()["predictions"]]

        with ThreadPoolExecutor(8) as pool:
            singles = pool.map(call, feature_rows[:40])
            # Batches are committed as one journal record each and expanded after the answer: the kill may come first.
            batches = pool.map(call_batch, [feature_rows[i : i + 10] for i in range(0, 50, 10)])
            acknowledged = [*singles, *(prediction_id for batch in batches for prediction_id in batch)]
        stop_group(server.process, signal.SIGKILL)  # the instant the last answer arrived
    finally:
        stop_group(server.process)
    logged = set(read_predictions(settings.prediction_log_url)["prediction_id"])
    assert set(acknowledged) <= logged, f"{len(set(acknowledged) - logged)} acknowledged predictions lost"


def test_keys_cli_creates_lists_and_revokes_without_storing_the_key(settings):
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--name", "ci", "--rate-limit", "5"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    listing = runner.invoke(app, ["keys", "list"])
    assert key_id in listing.stdout and "limit 5" in listing.stdout and key not in listing.stdout
    assert key.encode() not in get_settings().key_store.read_bytes()
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id])
    assert isinstance(again.exception, UserError)  # the installed `mlops` prints it as one line, exit code 2
    assert KeyStore(get_settings().key_store).active() == {}
