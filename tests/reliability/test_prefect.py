"""The Prefect server restarted while the training flow runs: the run ends in a final state, a retry completes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlops_core import registry
from mlops_core.settings import PROJECT_ROOT, Settings
from tests.service.conftest import wait_until
from tooling import processes

pytestmark = pytest.mark.slow
FLOW = "from flows.training import training_flow; training_flow()"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    server = processes.start(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=log.parent, log=log,
    )  # fmt: skip
    processes.wait_until_healthy(
        f"http://127.0.0.1:{port}/api/health", timeout=120, alive=lambda: server.poll() is None, what="prefect", log=log
    )
    return server


def flow_runs(api: str) -> list[dict]:
    return httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_ASC"}, timeout=10).json()


@pytest.mark.timeout(420)
def test_server_restart_during_a_flow_run(tmp_path, settings: Settings, loan_batches, figures) -> None:
    port = processes.free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # As every Prefect server the project's processes start (mlops_core/library_defaults.py): concurrency
        # leases on disk, so the training's slot survives the restart.
        PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=os.environ["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"],
        DO_NOT_TRACK="true",
        MLOPS_TRAINING__CANDIDATES='["logistic_regression", "hist_gradient_boosting"]',
    )
    log = tmp_path / "prefect-server.log"
    server = start_server(port, env, log)
    flow_log = tmp_path / "flow.log"
    try:
        run = processes.start([sys.executable, "-c", FLOW], env=env, cwd=PROJECT_ROOT, log=flow_log)
        try:
            wait_until(lambda: any(r["state_type"] == "RUNNING" for r in flow_runs(api)) or None, 180, "run started")
            processes.stop_group(server.pid)
            restarted_at = time.monotonic()
            server = start_server(port, env, log)
            outage = time.monotonic() - restarted_at
            exit_code = run.wait(240)
        finally:
            processes.stop_group(run.pid)
        interrupted = wait_until(
            lambda: (runs := flow_runs(api)) and runs[0]["state_type"] in FINAL and runs[0], 120, "a final state"
        )
        # The retry: the same flow again, against the restarted server.
        retry = subprocess.run(
            [sys.executable, "-c", FLOW], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
        )
        runs = flow_runs(api)
    finally:
        processes.stop_group(server.pid)
    figures["fault: Prefect server restarted"] = {
        "outage_s": round(outage, 1),
        "interrupted run": interrupted["state_type"],
        "its exit code": exit_code,
        "retry": runs[-1]["state_type"],
    }
    assert (exit_code == 0) == (interrupted["state_type"] == "COMPLETED"), processes.tail(flow_log)
    assert retry.returncode == 0 and runs[-1]["state_type"] == "COMPLETED", retry.stderr[-3000:]
    versions = registry.model_versions(registry.connect(settings), settings.mlflow.registered_model)
    assert len(versions) == 1 + (interrupted["state_type"] == "COMPLETED")
