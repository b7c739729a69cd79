"""Beyond one machine by settings only: the local stack with MLflow, Prefect and the audit log on PostgreSQL,
and MLflow's artifacts in an S3-compatible store.

A throwaway PostgreSQL cluster (Debian's server binaries, which `.ci/run` installs) runs on a free port in a
temporary directory; without the binaries the test is skipped and says why. The S3 endpoint is moto's
standalone server, which speaks the S3 API on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from mlops_core.settings import PROJECT_ROOT
from tests.servers import postgres_cluster
from tooling.processes import free_port, poll, stop_group

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture
def postgres() -> Iterator[str]:
    """A fresh cluster with the databases the stack needs; yields the server's base URL."""
    with postgres_cluster(("mlflow", "prefect", "mlops")) as server:
        yield server


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "moto.log").open("ab") as log:
        server = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        poll(lambda: httpx.get(url, timeout=2).status_code < 500, timeout=30, what="S3 endpoint")
        yield url
    finally:
        stop_group(server.pid)


def _s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_training_deployment_on_a_stack_backed_by_postgresql_and_s3(postgres, s3_endpoint, tmp_path, gx_context):
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(credentials)  # for this process's S3 client; restored below
    _s3(s3_endpoint).create_bucket(Bucket="mlops-artifacts")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    env.update(
        {
            **credentials,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            "MLOPS_STACK__MLFLOW_ARTIFACTS_DESTINATION": "s3://mlops-artifacts/mlflow",
            "MLOPS_STATE_DIR": str(tmp_path / "state"),
            "MLOPS_VALIDATION__CONTEXT_DIR": str(gx_context),
            "MLOPS_STACK__PREFECT_PORT": str(free_port()),
            "MLOPS_STACK__MLFLOW_PORT": str(free_port()),
            "MLOPS_SERVICE__PORT": str(free_port()),
            "MLOPS_STACK__MLFLOW_BACKEND_URI": f"postgresql+psycopg://{postgres}/mlflow",
            "MLOPS_STACK__PREFECT_DATABASE_URL": f"postgresql+asyncpg://{postgres}/prefect",
            "MLOPS_PROMOTION__AUDIT_URL": f"postgresql+psycopg://{postgres}/mlops",
            "MLOPS_MONITORING__STATE_URL": f"postgresql+psycopg://{postgres}/mlops",
            "MLOPS_EXPERIMENT__EVIDENCE_URL": f"postgresql+psycopg://{postgres}/mlops",
            "MLOPS_TRAINING__CANDIDATES": '["logistic_regression"]',
        }
    )

    def mlops(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "mlops"), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    try:
        up = mlops("stack", "up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        generated = mlops("data", "generate", "--rows", "6000", "--days", "3")
        assert generated.returncode == 0, generated.stderr[-2000:]
        from mlops_core.settings import Settings

        settings = Settings.model_validate({"state_dir": tmp_path / "state"})
        client_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{env['MLOPS_STACK__PREFECT_PORT']}/api"}
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "training/train", "--watch", "--watch-timeout", "240"],
            cwd=PROJECT_ROOT,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        down = mlops("stack", "down", timeout=120)
    assert down.returncode == 0, down.stderr[-2000:]

    # Everything durable went to PostgreSQL, nothing to the state directory's SQLite files.
    def rows(database: str, query: str) -> list[tuple]:
        with psycopg.connect(f"postgresql://{postgres}/{database}") as connection:
            return connection.execute(query).fetchall()

    assert rows("mlflow", "SELECT name, version FROM model_versions") == [("loan-default", 1)]
    assert rows("mlflow", "SELECT alias, version FROM registered_model_aliases") == [("champion", 1)]
    assert rows("mlops", "SELECT alias, from_version, to_version, action FROM alias_moves") == [
        ("champion", None, 1, "promote")
    ]
    states = poll(lambda: rows("prefect", "SELECT state_type FROM flow_run"), timeout=10, what="flow runs")
    assert ("COMPLETED",) in states
    assert not (settings.state_dir / "mlflow.db").exists()
    assert not (settings.state_dir / "registry_audit.db").exists()
    # The record of the online write (what a run on a fresh worker compares against) is in PostgreSQL too.
    assert rows("mlops", "SELECT count(*) FROM feature_materialisations")[0][0] > 0
    assert not (settings.state_dir / "monitoring.db").exists()
    stored = [o["Key"] for o in _s3(s3_endpoint).list_objects_v2(Bucket="mlops-artifacts").get("Contents", [])]
    assert any(key.endswith("model.skops") for key in stored), stored[:20]
    assert any(key.endswith("reference/sample.parquet") for key in stored)
    assert not (settings.state_dir / "mlartifacts").exists()
