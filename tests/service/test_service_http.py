"""The prediction service over HTTP: a real ``bentoml serve`` (2 workers) against a real MLflow server.

One service and one registry for the module; the registry is stopped by the last test.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from mlops_core import registry
from mlops_core.api_keys import ADMIN, KeyStore
from mlops_core.prediction_log import read_predictions
from mlops_core.security_log import read_security_events
from services.columnar import ARROW_STREAM, PARQUET, read_table, write_table
from tests.service.conftest import Server, registry_settings, service_environment, start_service, stop_group, wait_until
from tests.service.training import register_model

pytestmark = pytest.mark.slow
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def world(mlflow_server, tmp_path_factory):
    """Two registered versions (1 is champion), keys, and the running service."""
    url, _, artifacts = mlflow_server
    root = tmp_path_factory.mktemp("service")
    settings = registry_settings(root / "state", url)
    first = register_model(settings, root / "data-1", seed=1)
    second = register_model(settings, root / "data-2", seed=2, rows=3600)
    client = registry.connect(settings)
    client.set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(first))
    store = KeyStore(settings.key_store)
    keys = {
        "user": store.create("tests")[1],
        "admin": store.create("promotion flow", scope=ADMIN)[1],
        "limited": store.create("tight", rate_limit=3)[1],
        # Streams send as fast as the service answers: far more than the default per-key limit on a fast machine.
        "stream": store.create("request streams", rate_limit=1_000_000)[1],
    }
    env = service_environment(
        settings.state_dir,
        MLOPS_MLFLOW__TRACKING_URI=url,
        MLOPS_SERVICE__RATE_WINDOW_SECONDS="30",
        MLOPS_SERVICE__MAX_BODY_BYTES="20000",
        MLOPS_SERVICE__MAX_BATCH_ROWS="20",
    )
    server = start_service(env, root / "service.log")
    try:
        yield {
            "server": server,
            "settings": settings,
            "client": client,
            "versions": (first, second),
            "keys": keys,
            "store": store,
            "artifacts": artifacts,
            "mlflow": mlflow_server,
        }
    finally:
        stop_group(server.process)


@pytest.fixture(scope="module")
def api(world) -> httpx.Client:
    with world["server"].client(world["keys"]["user"]) as client:
        yield client


def test_both_request_forms_give_the_same_answer(api, world, feature_rows):
    row = feature_rows[0]
    named = api.post("/predict", json=row)
    assert named.status_code == 200, named.text
    body = named.json()
    order = list(row)
    seed_form = api.post("/predict", json={"features": [row[c] for c in order]})
    assert seed_form.status_code == 200, seed_form.text
    assert seed_form.json()["probabilities"] == body["probabilities"]
    assert body["model_name"] == world["settings"].mlflow.registered_model
    assert body["model_version"] == world["versions"][0] and body["model_semver"] == "1.0.0"
    assert body["prediction"] in (0, 1) and body["confidence"] == max(body["probabilities"].values())
    assert math.isclose(sum(body["probabilities"].values()), 1.0)
    assert datetime.fromisoformat(body["timestamp"]).utcoffset().total_seconds() == 0
    assert body["prediction_id"] != seed_form.json()["prediction_id"]


def test_batch_answers_each_row(api, feature_rows):
    response = api.post("/predict_batch", json={"rows": feature_rows[:5] + [[*feature_rows[5].values()]]})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert len(answers) == 6 and len({a["prediction_id"] for a in answers}) == 6
    single = api.post("/predict", json=feature_rows[2]).json()
    assert answers[2]["probabilities"] == single["probabilities"]


def test_every_bad_input_is_a_4xx_naming_field_and_reason(api, feature_rows):
    row = feature_rows[0]
    without_age = {k: v for k, v in row.items() if k != "age"}
    cases = [
        ({**row, "shoe_size": 42}, "shoe_size", "unknown field"),
        (without_age, "age", "missing"),
        ({**row, "age": "43"}, "age", "got a string"),
        ({**row, "age": True}, "age", "expected a number"),
        ({**row, "region": 7}, "region", "expected a string"),
        ({**row, "age": None}, "age", "must not be null"),
        ({"features": [1, 2, 3]}, "features", "expected 16 values"),
        ("hello", "body", "expected an object"),
    ]
    for body, field, reason in cases:
        response = api.post("/predict", json=body)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert any(d["field"] == field and reason in d["reason"] for d in detail), (field, detail)
    for token, field in (("NaN", "age"), ("-Infinity", "annual_income"), ("1e999", "loan_amount")):
        others = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in row.items() if k != field)
        response = api.post("/predict", content=f'{{{others}, "{field}": {token}}}', headers=JSON)
        assert response.status_code == 422, response.text
        assert any(d["field"] == field and "finite" in d["reason"] for d in response.json()["detail"])
    raw_cases = [
        ("/predict", b"{not json", "application/json", 400, "body"),
        ("/predict", b"\xff\xfe", "application/json", 400, "body"),
        ("/predict", b"{}", "text/plain", 415, "content-type"),
        ("/predict", b"{}", None, 415, "content-type"),
        ("/predict", b'{"a": "' + b"x" * 30_000 + b'"}', "application/json", 413, "body"),
        ("/predict_batch", b'{"rows": []}', "application/json", 422, "rows"),
        ("/predict_batch", b'{"rows": 5}', "application/json", 422, "rows"),
        ("/feedback", b'{"prediction_id": 5}', "application/json", 422, "prediction_id"),
    ]
    for path, content, content_type, status, field in raw_cases:
        headers = {"content-type": content_type} if content_type else {}
        response = api.post(path, content=content, headers=headers)
        assert response.status_code == status, (path, content[:40], response.text)
        assert response.json()["detail"][0]["field"] == field
    too_many = api.post("/predict_batch", json={"rows": [row] * 21})
    assert too_many.status_code == 422 and "at most 20" in too_many.json()["detail"][0]["reason"]
    bad_row = api.post("/predict_batch", json={"rows": [row, {**row, "age": "x"}]})
    assert bad_row.status_code == 422 and bad_row.json()["detail"][0]["field"] == "rows[1].age"
    wrong_method = api.get("/predict")
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"]
    unknown = api.post("/predictt", json=row)
    assert unknown.status_code == 404 and "/predictt" in unknown.json()["detail"][0]["reason"]


def columnar_body(rows: list[dict], media_type: str) -> bytes:
    return write_table(pa.Table.from_pylist(rows), media_type)


@pytest.mark.parametrize("media_type", [ARROW_STREAM, PARQUET])
def test_arrow_and_parquet_batches_are_answered_in_their_format_and_logged(api, world, feature_rows, media_type):
    rows = feature_rows[30:35]
    as_json = api.post("/predict_batch", json={"rows": rows}).json()["predictions"]
    headers = {"content-type": media_type, "accept": media_type}
    response = api.post("/predict_batch", content=columnar_body(rows, media_type), headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == media_type, response.text
    answers = read_table(response.content, media_type).to_pylist()
    assert [a["probabilities"] for a in answers] == [a["probabilities"] for a in as_json]
    assert [a["prediction"] for a in answers] == [a["prediction"] for a in as_json]
    assert {a["model_version"] for a in answers} == {world["versions"][0]} and answers[0]["warnings"] == []
    logged = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id")
    assert {a["prediction_id"] for a in answers} <= set(logged.index)  # committed before the answer
    first = logged.loc[answers[0]["prediction_id"]]
    assert first.features == {k: (float(v) if isinstance(v, int) else v) for k, v in rows[0].items()}
    plain = api.post("/predict_batch", content=columnar_body(rows, media_type), headers={"content-type": media_type})
    assert plain.headers["content-type"] == "application/json" and len(plain.json()["predictions"]) == 5


def test_every_malformed_columnar_batch_is_a_4xx_naming_the_column(api, feature_rows):
    good = pa.Table.from_pylist(feature_rows[:3])
    age = good.column_names.index("age")
    region = good.column_names.index("region")
    cases = [
        (good.append_column("shoe_size", pa.array([1, 2, 3])), 422, "shoe_size", "unknown field"),
        (good.drop_columns(["age"]), 422, "age", "missing required field"),
        (good.set_column(age, "age", pa.array(["1", "2", "3"])), 422, "age", "expected numbers"),
        (good.set_column(region, "region", pa.array([1, 2, 3])), 422, "region", "expected text"),
        (good.set_column(age, "age", pa.array([40.0, None, None])), 422, "age", "must not be null: 2 rows (1, 2)"),
        (good.set_column(age, "age", pa.array([40.0, float("inf"), 41.0])), 422, "age", "not a finite number"),
        (good.slice(0, 0), 422, "rows", "empty batch"),
        (pa.concat_tables([good] * 7), 422, "rows", "21 rows; at most 20"),
    ]
    for media_type in (ARROW_STREAM, PARQUET):
        headers = {"content-type": media_type, "accept": media_type}
        for table, status, field, reason in cases:
            response = api.post("/predict_batch", content=write_table(table, media_type), headers=headers)
            assert response.status_code == status and response.headers["content-type"] == "application/json"
            assert any(d["field"] == field and reason in d["reason"] for d in response.json()["detail"]), (
                media_type,
                field,
                response.text,
            )
        for corrupt in (b"", b"garbage" * 10, write_table(good, media_type)[:-30]):
            response = api.post("/predict_batch", content=corrupt, headers=headers)
            assert response.status_code == 400 and response.json()["detail"][0]["field"] == "body", response.text
    other = api.post("/predict_batch", content=b"x", headers={"content-type": "application/vnd.apache.arrow.file"})
    assert other.status_code == 415 and ARROW_STREAM in other.json()["detail"][0]["reason"]


def test_the_openapi_document_describes_the_batch_formats(api):
    batch = api.get("/openapi.json").json()["paths"]["/predict_batch"]["post"]
    assert {"application/json", ARROW_STREAM, PARQUET} <= set(batch["requestBody"]["content"])
    assert {"application/json", ARROW_STREAM, PARQUET} <= set(batch["responses"]["200"]["content"])


def test_values_far_outside_the_training_range_are_flagged(api, feature_rows):
    response = api.post("/predict", json={**feature_rows[0], "annual_income": 1e12, "region": "atlantis"})
    assert response.status_code == 200, response.text
    flagged = {w["field"] for w in response.json()["warnings"]}
    assert flagged == {"annual_income", "region"}


def test_keys_401_and_the_security_log(world, feature_rows):
    server: Server = world["server"]
    row = feature_rows[0]
    revoked_id, revoked = world["store"].create("leaver")
    with server.client(revoked) as client:
        assert client.post("/predict", json=row).status_code == 200
    assert world["store"].revoke(revoked_id)
    time.sleep(2.5)  # the service re-reads the key store every 2 s
    forged = world["keys"]["user"][:-4] + "AAAA"
    attempts = [
        ({}, "missing_key"),
        ({"X-API-Key": "nonsense"}, "invalid_key"),
        ({"Authorization": f"Bearer {forged}"}, "invalid_key"),
        ({"X-API-Key": revoked}, "invalid_key"),
        ({"Authorization": "Basic abc"}, "missing_key"),
    ]
    for headers, _ in attempts:
        response = httpx.post(f"{server.url}/predict", json=row, headers={**headers, "User-Agent": "probe/1"})
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    with server.client(world["keys"]["user"]) as client:
        assert client.post("/predict", json=row, headers={"Authorization": f"Bearer {world['keys']['user']}"})
        assert client.post("/admin/reload").status_code == 403
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200

    events = wait_until(lambda: _events(world, "probe/1", len(attempts)), 10, "security events written")
    assert [e for e in events["event_type"]] == [t for _, t in attempts]
    assert set(events["key_id"].dropna()) == {revoked_id, world["keys"]["user"].split("_")[1]}
    assert events["client"].str.startswith("127.0.0.1:").all()
    stored = Path(world["settings"].security_log_url.removeprefix("sqlite:///")).read_bytes()
    stored += world["settings"].key_store.read_bytes()
    for key in (*world["keys"].values(), revoked, forged):
        assert key.encode() not in stored


def _events(world, agent: str, count: int):
    events = read_security_events(world["settings"].security_log_url)
    events = events[events["user_agent"] == agent]
    return events if len(events) >= count else None


def test_rate_limit_is_shared_by_workers_and_answers_429(world, feature_rows):
    server: Server = world["server"]
    key = world["keys"]["limited"]
    statuses = []
    for _ in range(6):  # a new connection each time, so both workers take requests
        response = httpx.post(f"{server.url}/predict", json=feature_rows[0], headers={"X-API-Key": key})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert 1 <= int(response.headers["retry-after"]) <= 30
    events = wait_until(lambda: _rate_limit_events(world), 10, "rate-limit events")
    assert set(events["key_id"]) == {key.split("_")[1]}


def _rate_limit_events(world):
    events = read_security_events(world["settings"].security_log_url)
    events = events[events["event_type"] == "rate_limited"]
    return events if len(events) >= 3 else None


def test_every_answer_is_in_the_prediction_log_and_feedback_joins(api, world, feature_rows):
    answered = [api.post("/predict", json=row).json()["prediction_id"] for row in feature_rows[:10]]
    answered += [
        a["prediction_id"] for a in api.post("/predict_batch", json={"rows": feature_rows[10:20]}).json()["predictions"]
    ]
    # A batch row's label right after the answer: the row may still be in the batch journal, not yet expanded.
    labelled = api.post("/feedback", json={"prediction_id": answered[-1], "ground_truth": 0})
    assert labelled.status_code == 200, labelled.text
    log = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id")
    assert set(answered) <= set(log.index)
    first = log.loc[answered[0]]
    assert first.variant == "champion" and first.model_semver == "1.0.0" and len(first.input_hash) == 64
    assert first.features == feature_rows[0] and first.latency_ms > 0 and first.key_id
    response = api.post("/feedback", json={"prediction_id": answered[0], "ground_truth": 1})
    assert response.status_code == 200, response.text
    assert api.post("/feedback", json={"prediction_id": "no-such-id", "ground_truth": 1}).status_code == 404
    log = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id")
    assert log.loc[answered[0]].ground_truth == "1" and log.loc[answered[0]].ground_truth_ts is not None
    assert log.loc[answered[-1]].ground_truth == "0"


def test_metrics_count_predictions_and_the_model_version(api, world):
    text = httpx.get(f"{world['server'].url}/metrics").text
    assert "mlops_predictions_total{" in text and "mlops_refused_requests_total{" in text
    assert "mlops_model_version{" in text and 'endpoint="/predict"' in text


class Stream:
    """A bounded stream of requests from 4 threads, recording every status and served version."""

    def __init__(self, server: Server, key: str, row: dict, seconds: float = 40) -> None:
        self.server, self.key, self.row, self.seconds = server, key, row, seconds
        self.results: list[tuple[int, int | None]] = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(4)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with self.server.client(self.key) as client:
            while not self.done.is_set() and time.monotonic() < deadline:
                try:
                    response = client.post("/predict", json=self.row)
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    self.results.append((response.status_code, version))
                except httpx.HTTPError:
                    self.results.append((0, None))

    def __enter__(self) -> Stream:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)

    def served(self, version: int) -> bool:
        """Every worker serves ``version``: the last 12 answers (from 4 connections over 2 workers) all came from it."""
        recent = self.results[-12:]
        return len(recent) == 12 and all(v == version for _, v in recent)


def test_promotion_and_rollback_without_a_failed_request(world, feature_rows):
    first, second = world["versions"]
    name = world["settings"].mlflow.registered_model
    admin = world["server"].client(world["keys"]["admin"])
    with Stream(world["server"], world["keys"]["stream"], feature_rows[3]) as stream:
        time.sleep(0.5)
        world["client"].set_registered_model_alias(name, registry.CHAMPION, str(second))
        assert admin.post("/admin/reload").status_code == 202
        wait_until(lambda: stream.served(second), 20, "promotion picked up")
        world["client"].set_registered_model_alias(name, registry.CHAMPION, str(first))  # rollback, found by polling
        wait_until(lambda: stream.served(first), 20, "rollback picked up")
    statuses = [s for s, _ in stream.results]
    assert len(statuses) > 20 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert {v for _, v in stream.results} == {first, second}


def register_broken(world, data_dir: Path) -> int:
    """A registered version whose stored model file is damaged: it cannot be loaded."""
    settings = world["settings"]
    broken = register_model(settings, data_dir, seed=3)
    source = world["client"].get_model_version(settings.mlflow.registered_model, str(broken)).source
    model_id = source.rsplit("/", 1)[-1]
    damaged = [p for p in world["artifacts"].rglob("*.skops") if model_id in p.as_posix()]
    assert damaged, f"no stored model file for {source}"
    for path in damaged:
        path.write_bytes(b"not a model")
    return broken


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(world, feature_rows, tmp_path):
    first, _ = world["versions"]
    settings = world["settings"]
    broken = register_broken(world, tmp_path / "data")
    with Stream(world["server"], world["keys"]["stream"], feature_rows[4], seconds=15) as stream:
        world["client"].set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(broken))
        ready = wait_until(
            lambda: (r := httpx.get(f"{world['server'].url}/readyz").json())["status"] == "degraded" and r,
            20,
            "broken version refused",
        )
    assert f"version {broken} refused" in " ".join(ready["reasons"]) and ready["model"]["version"] == first
    assert {s for s, _ in stream.results} == {200} and {v for _, v in stream.results} == {first}
    world["client"].set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(first))
    wait_until(lambda: httpx.get(f"{world['server'].url}/readyz").json()["status"] == "ready", 20, "ready again")


@pytest.fixture
def experiment(world):
    """Sets the challenger alias and the serving mode, waits until every worker follows; back to champion after."""
    settings, client = world["settings"], world["client"]
    name = settings.mlflow.registered_model
    admin = world["server"].client(world["keys"]["admin"])

    def switch(mode: str, share: float = 0.0, challenger: int | None = None) -> None:
        if challenger is None:
            client.delete_registered_model_alias(name, registry.CHALLENGER)
        else:
            client.set_registered_model_alias(name, registry.CHALLENGER, str(challenger))
        registry.set_serving_mode(client, name, mode, share, actor="tests", reason="A/B test")
        assert admin.post("/admin/reload").status_code == 202
        wanted = {"mode": mode, "challenger_share": share}
        # Six answers in a row on new connections (both workers) in the wanted mode.
        wait_until(lambda: all(_serving(world) == wanted for _ in range(6)), 20, f"mode {mode} on every worker")
        if mode != "champion":
            time.sleep(0.6)  # the challenger is loaded before the mode is published; the other worker's poll

    yield switch
    switch("champion")
    admin.close()


def _serving(world) -> dict:
    return httpx.get(f"{world['server'].url}/readyz").json()["serving"]


@pytest.fixture(scope="module")
def ab_key(world) -> str:
    return world["store"].create("ab traffic", rate_limit=100_000)[1]


def test_ab_split_is_sticky_within_tolerance_and_logged_per_variant(world, experiment, ab_key, feature_rows):
    first, second = world["versions"]
    experiment("ab", 0.3, challenger=second)
    sessions = [f"user-{i}" for i in range(300)]
    answers = {}
    with world["server"].client(ab_key) as client:
        for i, session in enumerate(sessions):
            response = client.post("/predict", json=feature_rows[i % 50], headers={"X-Session-Id": session})
            assert response.status_code == 200, response.text
            answers[session] = response.json()
        repeats = {
            s: client.post("/predict", json=feature_rows[0], headers={"X-Session-Id": s}).json() for s in sessions[:40]
        }
        by_key = {client.post("/predict", json=feature_rows[1]).json()["variant"] for _ in range(15)}
    variants = [a["variant"] for a in answers.values()]
    n, share = len(variants), 0.3
    assert abs(variants.count("challenger") - n * share) <= 4 * (n * share * (1 - share)) ** 0.5, variants.count(
        "challenger"
    )
    assert all(repeats[s]["variant"] == answers[s]["variant"] for s in repeats)
    assert len(by_key) == 1  # no session: the key id keeps the caller on one variant
    assert {a["model_version"] for a in answers.values() if a["variant"] == "challenger"} == {second}
    assert {a["model_version"] for a in answers.values() if a["variant"] == "champion"} == {first}
    log = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id")
    logged = log.loc[[a["prediction_id"] for a in answers.values()]]
    assert list(logged["variant"]) == variants
    assert 'variant="challenger"' in httpx.get(f"{world['server'].url}/metrics").text


def test_shadow_rows_are_logged_and_never_returned(world, experiment, ab_key, feature_rows):
    first, second = world["versions"]
    experiment("shadow", 0.0, challenger=second)
    with world["server"].client(ab_key) as client:
        answers = [client.post("/predict", json=row).json() for row in feature_rows[:20]]
        batch = client.post("/predict_batch", json={"rows": feature_rows[20:25]}).json()["predictions"]
    answers += batch
    assert {a["variant"] for a in answers} == {"champion"} and {a["model_version"] for a in answers} == {first}
    ids = {a["prediction_id"] for a in answers}

    def shadow_rows():
        log = read_predictions(world["settings"].prediction_log_url)
        rows = log[(log["variant"] == "shadow") & log["paired_id"].isin(ids)]
        return rows if len(rows) == len(ids) else None

    rows = wait_until(shadow_rows, 10, "shadow rows logged")
    assert set(rows["paired_id"]) == ids and set(rows["model_version"]) == {second}
    assert not ids & set(rows["prediction_id"])
    champion_rows = read_predictions(world["settings"].prediction_log_url).set_index("prediction_id").loc[list(ids)]
    assert list(rows.set_index("paired_id").loc[list(ids), "features"]) == list(champion_rows["features"])


def test_a_failing_challenger_never_fails_a_request(world, experiment, ab_key, feature_rows, tmp_path):
    first, _ = world["versions"]
    broken = register_broken(world, tmp_path / "data")
    for mode in ("ab", "shadow"):
        experiment(mode, 1.0, challenger=broken)
        ready = httpx.get(f"{world['server'].url}/readyz").json()
        assert ready["status"] == "degraded" and f"version {broken} refused" in " ".join(ready["reasons"])
        with world["server"].client(ab_key) as client:
            responses = [
                client.post("/predict", json=r, headers={"X-Session-Id": f"f{i}"})
                for i, r in enumerate(feature_rows[:15])
            ]
        assert {r.status_code for r in responses} == {200}
        assert {(r.json()["variant"], r.json()["model_version"]) for r in responses} == {("champion", first)}
    metrics = httpx.get(f"{world['server'].url}/metrics").text
    assert 'mlops_challenger_faults_total{mode="ab",reason="missing"}' in metrics
    assert 'mlops_challenger_faults_total{mode="shadow",reason="missing"}' in metrics


def test_registry_down_keeps_serving_and_reports_degraded(world, api, feature_rows):
    _, process, _ = world["mlflow"]
    stop_group(process)
    ready = wait_until(
        lambda: (r := httpx.get(f"{world['server'].url}/readyz")).json()["status"] == "degraded" and r,
        30,
        "degraded readiness",
    )
    assert ready.status_code == 200 and "registry unreachable" in ready.json()["reasons"][0]
    for row in feature_rows[:5]:
        assert api.post("/predict", json=row).status_code == 200
