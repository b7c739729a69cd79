"""A fleet behaves as one service: two ``bentoml serve`` instances with separate state directories (two pods)
share their state by URL only, the settings the README's "Beyond one machine" lists.

Keys, the prediction and the security log are in one PostgreSQL database, rate limits and the feature update
journal in one Redis (Feast's online store too, as a deployment would have it); the registry is an MLflow server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from mlops_core import registry
from mlops_core.features import FeatureRepository
from mlops_core.prediction_log import engine_for, read_predictions
from mlops_core.settings import Settings
from services.guard import KEY_REFRESH_SECONDS
from stages.data.generator import generate_day
from stages.features.training_sets import materialize, write_offline
from stages.monitoring.reference import champion_reference
from stages.monitoring.window import sample_window
from tests.servers import postgres_cluster, redis_server
from tests.service.conftest import VENV_BIN, Server, service_environment, start_service, stop_group
from tests.service.training import register_model

pytestmark = pytest.mark.slow
KEY_LIMIT = 12  # requests per window of the rate-limit test's key


class Fleet:
    def __init__(self, instances: list[Server], states: list[Path], env: dict[str, str], settings: Settings) -> None:
        self.instances, self.states, self.env, self.settings = instances, states, env, settings

    def mlops(self, *args: str) -> str:
        """The CLI with the fleet's shared settings, from a state directory of its own (an operator's laptop)."""
        done = subprocess.run(
            [str(VENV_BIN / "mlops"), *args], env=self.env, check=True, capture_output=True, text=True, timeout=120
        )
        return done.stdout.strip()

    def create_key(self, *options: str) -> tuple[str, str]:
        key = self.mlops("keys", "create", "--name", "fleet", *options)
        return key.split("_")[1], key


@pytest.fixture(scope="module")
def fleet(mlflow_server, tmp_path_factory):
    url, _, _ = mlflow_server
    root: Path = tmp_path_factory.mktemp("fleet")
    with redis_server(root / "redis") as redis_url, postgres_cluster(("mlops",)) as postgres:
        database = f"postgresql+psycopg://{postgres}/mlops"
        redis_address = redis_url.removeprefix("redis://").split("/")[0]
        shared = {
            "MLOPS_MLFLOW__TRACKING_URI": url,
            "MLOPS_SERVICE__KEYS_URL": database,
            "MLOPS_SERVICE__RATE_LIMIT_URL": redis_url,
            "MLOPS_SERVICE__PREDICTION_LOG_URL": database,
            "MLOPS_SERVICE__SECURITY_LOG_URL": database,
            "MLOPS_FEATURES__JOURNAL_URL": redis_url,
            "MLOPS_FEATURES__ONLINE_STORE": json.dumps({"type": "redis", "connection_string": redis_address}),
            "MLOPS_FEATURES__REGISTRY": str(root / "feature-registry.db"),
            "MLOPS_FEATURES__CACHE_TTL_SECONDS": "300",
        }
        operator = service_environment(root / "operator", **shared)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in operator.items():
                patch.setenv(name, value)
            settings = Settings()
        version = register_model(settings, root / "data", seed=1)
        registry.connect(settings).set_registered_model_alias(
            settings.mlflow.registered_model, registry.CHAMPION, version
        )
        applicants = generate_day(date(2026, 11, 1), 3, seed=9)
        applicants["applicant_id"] = [201, 202, 203]
        features = FeatureRepository(settings)
        features.apply()
        write_offline(features, applicants, "application_ts")
        materialize(features, datetime(2026, 10, 31, tzinfo=UTC))

        instances: list[Server] = []
        states = [root / "pod-a", root / "pod-b"]
        try:
            for state in states:
                instances.append(start_service(service_environment(state, **shared), root / f"{state.name}.log"))
            yield Fleet(instances, states, operator, settings)
        finally:
            for server in instances:
                stop_group(server.process)


def post(server: Server, key: str, path: str, body: dict) -> httpx.Response:
    """One request on a connection of its own, so that successive requests reach either worker of the instance."""
    with server.client(key) as client:
        return client.post(path, json=body)


def statuses(fleet: Fleet, key: str, body: dict, rounds: int = 4) -> list[list[int]]:
    """Per instance, the statuses of ``rounds`` predictions sent to the instances in turn."""
    answers: list[list[int]] = [[] for _ in fleet.instances]
    for _ in range(rounds):
        for i, server in enumerate(fleet.instances):
            answers[i].append(post(server, key, "/predict", body).status_code)
    return answers


def test_a_key_created_once_works_on_every_instance_and_a_revoked_one_stops_within_the_poll(
    fleet, feature_rows
) -> None:
    key_id, key = fleet.create_key()
    assert statuses(fleet, key, feature_rows[0]) == [[200] * 4, [200] * 4]

    fleet.mlops("keys", "revoke", key_id)
    time.sleep(KEY_REFRESH_SECONDS + 0.5)  # every worker's last look at the store is older than its poll by now
    assert statuses(fleet, key, feature_rows[0]) == [[401] * 4, [401] * 4]

    assert key_id in fleet.mlops("keys", "list")  # one store: the listing of any operator sees it revoked
    assert "revoked" in next(line for line in fleet.mlops("keys", "list").splitlines() if key_id in line)


def test_a_limit_is_reached_by_requests_split_across_the_instances(fleet, feature_rows) -> None:
    _, key = fleet.create_key("--rate-limit", str(KEY_LIMIT))
    split = statuses(fleet, key, feature_rows[1], rounds=KEY_LIMIT // 2)
    assert split == [[200] * (KEY_LIMIT // 2)] * 2  # each instance alone is far below the limit ...
    refused = statuses(fleet, key, feature_rows[1], rounds=1)
    assert refused == [[429], [429]]  # ... together they reached it: the next is refused on either
    response = post(fleet.instances[0], key, "/predict", feature_rows[1])
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1


def test_an_entity_update_is_never_answered_stale_by_any_instance(fleet) -> None:
    _, key = fleet.create_key()
    entity = {"applicant_id": 202}

    def answers() -> list[httpx.Response]:
        return [post(server, key, "/predict_entity", entity) for _ in range(4) for server in fleet.instances]

    before = [response.json() for response in answers()]
    assert len({answer["features_as_of"] for answer in before}) == 1  # cached by now in the workers that answered

    fleet.mlops("features", "update", "202", "--set", "credit_score=432", "--set", "region=north")

    after = answers()
    assert {response.status_code for response in after} == {200}
    logged = read_predictions(fleet.settings.prediction_log_url).set_index("prediction_id")
    for answer in (response.json() for response in after):
        features = logged.loc[answer["prediction_id"]].features
        assert (features["credit_score"], features["region"]) == (432, "north")
        assert answer["features_as_of"] > before[0]["features_as_of"]


def test_one_monitoring_check_reads_the_predictions_of_every_instance(fleet, feature_rows) -> None:
    start = datetime.now(UTC)
    _, key = fleet.create_key()
    answered: list[set[str]] = []
    for server in fleet.instances:
        answers = [post(server, key, "/predict", row) for row in feature_rows[:10]]
        assert {response.status_code for response in answers} == {200}
        batch = post(server, key, "/predict_batch", {"rows": feature_rows[10:30]})
        assert batch.status_code == 200, batch.text
        answered.append({response.json()["prediction_id"] for response in answers})
        answered[-1] |= {answer["prediction_id"] for answer in batch.json()["predictions"]}

    settings = fleet.settings
    reference = champion_reference(registry.connect(settings), settings.mlflow.registered_model)
    # As the monitoring flow opens the log: the batches' journal records are expanded first, while both instances
    # may be expanding them too.
    engine = engine_for(settings.prediction_log_url)
    try:
        window = (start, datetime.now(UTC) + timedelta(seconds=1))
        sample = sample_window(engine, reference.model, *window, reference.profile, settings.monitoring.max_rows)
    finally:
        engine.dispose()
    assert sample.rows_in_window == sample.rows == 60  # ten and a batch of twenty from each instance, in one window
    logged = read_predictions(settings.prediction_log_url).prediction_id
    assert all(ids <= set(logged) for ids in answered) and logged.is_unique


def test_no_instance_keeps_fleet_state_in_its_own_directory(fleet) -> None:
    for state in fleet.states:
        local = ["service/keys.db", "service/ratelimit.db", "service/predictions.db", "features/updates.journal"]
        assert [name for name in local if (state / name).exists()] == []
    shared = redis.Redis.from_url(fleet.settings.service.rate_limit_url)
    assert shared.keys("mlops:rate-limit:*") and shared.xlen(f"mlops:feature-updates:{fleet.settings.features.project}")


def test_a_redis_that_cannot_count_is_a_503_with_retry_after_on_every_instance(fleet, feature_rows) -> None:
    _, key = fleet.create_key()
    shared = redis.Redis.from_url(fleet.settings.service.rate_limit_url)
    redis_pid = shared.info("server")["process_id"]
    os.kill(redis_pid, signal.SIGSTOP)  # up but answering nothing: the hardest case, a timeout
    try:
        refused = [post(server, key, "/predict", feature_rows[2]) for server in fleet.instances]
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    for response in refused:
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json()["error"] == "rate_limit_store_unavailable"
    assert statuses(fleet, key, feature_rows[2], rounds=1) == [[200], [200]]
