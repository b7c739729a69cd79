"""Bounded load at 64 connections: no errors, and the prediction log holds exactly one row per answer."""

from __future__ import annotations

import pytest

from mlops_core.prediction_log import read_predictions
from tests.reliability.conftest import World, scaled
from tests.reliability.load import run_load

pytestmark = pytest.mark.slow
CONNECTIONS = 64
REQUESTS = scaled(1200)


def test_64_connections_without_errors_and_one_log_row_per_answer(world: World, feature_rows, figures) -> None:
    key_id, key = world.store.create("load", rate_limit=10_000_000)
    outcome = run_load(world.server.url, key, feature_rows, connections=CONNECTIONS, requests=REQUESTS)
    log = read_predictions(world.settings.prediction_log_url)
    logged = log[log["key_id"] == key_id]["prediction_id"]
    acknowledged = set(outcome.acknowledged)
    figures["load (64 connections)"] = {
        "requests": outcome.requests,
        "errors": outcome.errors,
        "predictions": len(outcome.acknowledged),
        "rows_logged": len(logged),
        "rows_reconciled": len(acknowledged & set(logged)),
        "req_per_s": round(outcome.requests / outcome.seconds),
    }
    assert outcome.requests == REQUESTS and outcome.errors == 0, (dict(outcome.statuses), dict(outcome.failures))
    assert len(acknowledged) == len(outcome.acknowledged), "a prediction id was answered twice"
    assert logged.is_unique and set(logged) == acknowledged, (
        f"{len(acknowledged - set(logged))} answers without a row, {len(set(logged) - acknowledged)} rows without an answer"
    )
