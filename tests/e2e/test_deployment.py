"""The deployments in prefect.yaml end to end: a real Prefect server, a process work pool and worker.

Everything runs as separate processes, as a user runs it: `prefect server start`, `prefect work-pool create`,
`prefect --no-prompt deploy --all`, `prefect worker start`; the run is triggered through the API and must
complete and register a model version in the MLflow store the worker's environment points at. Then a second
registered model drifts: its monitoring check's event reaches the retraining trigger, which retrains that model
(not the worker's), once per episode, one training of it at a time, and the alert reaches a webhook.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mlops_core import registry
from mlops_core.settings import PROJECT_ROOT, Settings
from tests.servers import webhook_receiver
from tooling import processes as server_processes

PREFECT = str(PROJECT_ROOT / ".venv" / "bin" / "prefect")
POOL = "mlops-local"
DEPLOYMENT = "training/train"

SERVER_START_TIMEOUT = 60  # about 14 s on a new database on 2 cores
CLI_TIMEOUT = 60
FLOW_RUN_TIMEOUT = 90
TRIGGER_TIMEOUT = 60  # the server's trigger service acts on an event within seconds
SECOND_MODEL = "loan-default-second"


class _Processes:
    """Long-running processes started in their own sessions, stopped by process group in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        proc = server_processes.start(args, env=env, cwd=cwd, log=log)
        self.started.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(server_processes.tail(log) for _, log in self.started)

    def stop_all(self) -> None:
        for proc, _ in reversed(self.started):
            server_processes.stop_group(proc.pid)
            proc.wait(timeout=5)


def _wait_healthy(api_url: str, server: subprocess.Popen, started: _Processes) -> None:
    try:
        server_processes.wait_until_healthy(
            f"{api_url}/health",
            timeout=SERVER_START_TIMEOUT,
            alive=lambda: server.poll() is None,
            what="prefect server",
        )
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}\n{started.logs()}")


def _prefect(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[_Processes]:
    started = _Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_deployment_runs_on_a_process_worker(
    tmp_path: Path, settings: Settings, loan_batches: Path, processes: _Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = server_processes.free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    prefect_home = tmp_path / "prefect-home"
    prefect_home.mkdir()
    # A clean environment for Prefect: no profile, API key or URL of the user's leaks into the test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="true",
        PREFECT_CLI_PROMPT="false",
    )

    server = processes.start(
        "server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    _wait_healthy(api_url, server, processes)
    _prefect("work-pool", "create", POOL, "--type", "process", "--overwrite", env=env, cwd=tmp_path)

    # The worker starts outside the project: the flow finds its code only through the deployment's pull step,
    # and its data and MLflow store only through the MLOPS_* environment it passes on to the flow run.
    worker_env = {
        **env,
        "MLOPS_STATE_DIR": str(settings.state_dir),
        "MLOPS_VALIDATION__CONTEXT_DIR": str(settings.validation.context_dir),
        "MLOPS_TRAINING__CANDIDATES": '["logistic_regression"]',
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    worker = processes.start(
        "worker", [PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], env=worker_env, cwd=tmp_path
    )

    # Deploy from the project as a program (CI, a script) does: its PWD variable need not be the project.
    _prefect("--no-prompt", "deploy", "--all", env={**env, "PWD": str(tmp_path)}, cwd=PROJECT_ROOT)

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            directory = deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"]
            assert Path(directory) == PROJECT_ROOT
            # Every parameter of every deployment is described in the UI (from the flows' docstrings).
            deployments = client.read_deployments()
            assert len(deployments) >= 7
            for each in deployments:
                properties = each.parameter_openapi_schema["properties"]
                undescribed = [name for name, schema in properties.items() if not schema.get("description")]
                assert not undescribed, f"{each.name}: no description for {undescribed}"
            window = deployment.parameter_openapi_schema["properties"]["window_days"]["description"]
            assert window.startswith("Train on the newest N daily batches only")

        flow_run = run_deployment(DEPLOYMENT, timeout=0, as_subflow=False)
        deadline = time.monotonic() + FLOW_RUN_TIMEOUT
        with get_client(sync_client=True) as client:
            while True:
                flow_run = client.read_flow_run(flow_run.id)
                if flow_run.state is not None and flow_run.state.is_final():
                    break
                if worker.poll() is not None:
                    pytest.fail(f"worker exited with {worker.returncode}\n{processes.logs()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"flow run still {flow_run.state} after {FLOW_RUN_TIMEOUT} s\n{processes.logs()}")
                time.sleep(1)

    assert flow_run.state.is_completed(), f"flow run ended {flow_run.state}\n{processes.logs()}"
    assert flow_run.name == f"train {flow_run.expected_start_time:%Y-%m-%d} window all"
    versions = registry.model_versions(registry.connect(settings), settings.mlflow.registered_model)
    assert [int(v.version) for v in versions] == [1]
    assert versions[0].tags[registry.TAG_SEMVER] == "1.0.0"
    assert versions[0].tags[registry.TAG_GX_SUCCESS] == "true"

    with temporary_settings({PREFECT_API_URL: api_url}), webhook_receiver() as (webhook, received):
        _second_model_drifts_and_is_retrained_by_the_trigger(
            settings, monkeypatch, webhook, received, processes, api_url
        )


def _wait_final(client, run_id, processes: _Processes):
    deadline = time.monotonic() + FLOW_RUN_TIMEOUT
    while not (run := client.read_flow_run(run_id)).state.is_final():
        if time.monotonic() > deadline:
            pytest.fail(f"flow run {run.name} still {run.state} after {FLOW_RUN_TIMEOUT} s\n{processes.logs()}")
        time.sleep(1)
    assert run.state.is_completed(), f"flow run {run.name} ended {run.state}\n{processes.logs()}"
    return run


def _monitoring_check(model: Settings, api_url: str):
    """One monitoring check in a process of its own against this server, as the worker runs it: this test's
    process has the session's temporary Prefect server in its global settings, which the background events
    worker would use to look up the run its events relate to."""
    from stages.monitoring.history import CheckHistory

    done = subprocess.run(
        [sys.executable, "-c", "from flows.monitoring import monitoring_flow; monitoring_flow(min_rows=300)"],
        env={**os.environ, "PREFECT_API_URL": api_url}, cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=FLOW_RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return CheckHistory(model.monitoring_state_url).last(model.mlflow.registered_model)


def _second_model_drifts_and_is_retrained_by_the_trigger(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    webhook: str,
    received: list,
    processes: _Processes,
    api_url: str,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, LogFilter, LogFilterFlowRunId
    from prefect.deployments import run_deployment

    from mlops_core.settings import get_settings
    from stages.data.generator import generate_day
    from stages.promotion.aliases import promote
    from tests.helpers import log_predictions, register_quickly

    # A second registered model, monitored by its own settings; the worker's settings name the first one.
    monkeypatch.setenv("MLOPS_MLFLOW__REGISTERED_MODEL", SECOND_MODEL)
    monkeypatch.setenv("MLOPS_MONITORING__ALERT_WEBHOOK_URL", webhook)
    get_settings.cache_clear()
    second = get_settings()
    promote(second, register_quickly(second, second.data_source).version)
    log_predictions(second, generate_day(date(2026, 11, 9), 1_000, seed=7, scenario="covariate"))
    first_check = _monitoring_check(second, api_url)
    assert first_check.triggered, first_check.reason

    def retrainings():
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
            )

    (retraining,) = server_processes.poll(retrainings, timeout=TRIGGER_TIMEOUT, what="the trigger's retraining")
    assert retraining.created_by.display_value == "retrain on drift or decay"
    assert retraining.parameters["registered_model"] == SECOND_MODEL
    # A manual training of the same model, requested while the retraining is pending: they run one at a time.
    manual = run_deployment(DEPLOYMENT, parameters={"registered_model": SECOND_MODEL}, timeout=0, as_subflow=False)

    log_predictions(
        second, generate_day(date(2026, 11, 10), 1_000, seed=8, scenario="covariate"), when=datetime.now(UTC)
    )
    next_check = _monitoring_check(second, api_url)  # the same episode: it alerts and asks for nothing
    assert next_check.status == "alert" and not next_check.triggered, next_check.reason

    with get_client(sync_client=True) as client:
        logs = {}
        for run in (retraining, manual):
            name = _wait_final(client, run.id, processes).name
            logs[run.id] = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        assert name == f"train {manual.expected_start_time:%Y-%m-%d} window all"
        assert client.read_flow_run(retraining.id).name.startswith("retrain after drift (share"), retraining
    held = [run_id for run_id, lines in logs.items() if any("held back" in line.message for line in lines)]
    assert len(held) == 1, "exactly one of the two overlapping trainings waited for the other"
    (free,) = set(logs) - set(held)
    acquired = [line.timestamp for line in logs[held[0]] if "acquired" in line.message]
    last_step_of_free = max(line.timestamp for line in logs[free] if line.task_run_id is not None)
    assert acquired and acquired[0] >= last_step_of_free, "the held-back training started before the other ended"
    assert len(retrainings()) == 1, "one retraining per episode"

    client = registry.connect(settings)
    assert [int(v.version) for v in registry.model_versions(client, SECOND_MODEL)] == [1, 2, 3]
    assert [int(v.version) for v in registry.model_versions(client, settings.mlflow.registered_model)] == [1]
    alerts = [body for body in received if SECOND_MODEL in body["subject"]]
    assert len(alerts) == 2 and "drift share" in alerts[0]["body"], received
    assert "retraining requested" in alerts[0]["subject"] and "retraining requested" not in alerts[1]["subject"]
