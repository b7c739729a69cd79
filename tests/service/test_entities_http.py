"""Prediction by entity id over HTTP: features from a real Feast online store, cached per worker, kept fresh."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from mlops_core import registry
from mlops_core.api_keys import KeyStore
from mlops_core.features import FeatureRepository
from mlops_core.prediction_log import read_predictions
from stages.data.generator import generate_day
from stages.features.training_sets import materialize, write_offline
from tests.service.conftest import VENV_BIN, registry_settings, service_environment, start_service, stop_group
from tests.service.training import register_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(mlflow_server, tmp_path_factory):
    """A champion, five applicants in the feature store (online), a key, and the service (2 workers)."""
    url, _, _ = mlflow_server
    root = tmp_path_factory.mktemp("entities")
    settings = registry_settings(root / "state", url)
    version = register_model(settings, root / "data", seed=1)
    registry.connect(settings).set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, version)
    applicants = generate_day(date(2026, 11, 1), 5, seed=9)
    applicants["applicant_id"] = [101, 102, 103, 104, 105]
    features = FeatureRepository(settings)
    features.apply()
    write_offline(features, applicants, "application_ts")
    materialize(features, datetime(2026, 10, 31, tzinfo=UTC))
    key = KeyStore(settings.key_store).create("entity tests", rate_limit=1_000_000)[1]
    env = service_environment(
        settings.state_dir, MLOPS_MLFLOW__TRACKING_URI=url, MLOPS_FEATURES__CACHE_TTL_SECONDS="300"
    )
    server = start_service(env, root / "service.log")
    try:
        with server.client(key) as client:
            yield {"client": client, "settings": settings, "applicants": applicants, "env": env}
    finally:
        stop_group(server.process)


def logged_features(world, prediction_id: str) -> dict:
    log = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id")
    return log.loc[prediction_id].features


def test_answers_by_entity_with_the_stored_features(world):
    client, applicant = world["client"], world["applicants"].iloc[0]
    response = client.post("/predict_entity", json={"applicant_id": 101})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["applicant_id"] == 101 and answer["model_version"] == 1
    assert pd.Timestamp(answer["features_as_of"]) == applicant["application_ts"]
    assert logged_features(world, answer["prediction_id"])["credit_score"] == pytest.approx(applicant["credit_score"])

    # The same features sent by value give the same probabilities.
    row = {
        k: (None if v != v else v) for k, v in applicant.drop(["applicant_id", "application_ts", "defaulted"]).items()
    }
    by_value = client.post("/predict", json={k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    assert by_value.json()["probabilities"] == pytest.approx(answer["probabilities"])


def test_an_update_is_never_answered_stale_by_any_worker(world):
    client = world["client"]
    before = [client.post("/predict_entity", json={"applicant_id": 102}).json() for _ in range(12)]
    assert len({logged_features(world, a["prediction_id"])["credit_score"] for a in before}) == 1  # cached

    subprocess.run(
        [str(VENV_BIN / "mlops"), "features", "update", "102", "--set", "credit_score=432", "--set", "region=north"],
        env=world["env"], check=True, capture_output=True, timeout=120,
    )  # fmt: skip

    after = [client.post("/predict_entity", json={"applicant_id": 102}).json() for _ in range(12)]
    for answer in after:  # both workers had the old value cached; none may answer with it
        features = logged_features(world, answer["prediction_id"])
        assert (features["credit_score"], features["region"]) == (432, "north")
        assert answer["features_as_of"] > before[0]["features_as_of"]


def test_unknown_entity_and_bad_requests_are_4xx_with_reasons(world):
    client = world["client"]
    unknown = client.post("/predict_entity", json={"applicant_id": 999_999})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_entity" and unknown.json()["detail"][0]["field"] == "applicant_id"
    for body in ({"applicant_id": "101"}, {"applicant_id": True}, {"id": 101}, [101], {"applicant_id": 2**64}):
        response = client.post("/predict_entity", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"][0]["field"] == "applicant_id"


def test_store_down_is_503_and_the_cache_only_serves_within_its_ttl(world):
    client, settings = world["client"], world["settings"]
    assert client.post("/predict_entity", json={"applicant_id": 103}).status_code == 200
    online = settings.feature_store_dir / "online.db"
    healthy = online.read_bytes()
    online.write_bytes(b"not a database" * 1024)
    try:
        down = client.post("/predict_entity", json={"applicant_id": 104})  # in no cache yet
        assert down.status_code == 503 and down.json()["error"] == "feature_store_unavailable"
        assert down.headers["retry-after"]
        # 103 was cached (TTL 300 s) by whichever worker answered; within the TTL it may be answered from there.
        statuses = {client.post("/predict_entity", json={"applicant_id": 103}).status_code for _ in range(6)}
        assert statuses <= {200, 503} and 500 not in statuses
    finally:
        online.write_bytes(healthy)
    assert client.post("/predict_entity", json={"applicant_id": 104}).status_code == 200
