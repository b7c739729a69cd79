"""The training deployment in prefect.yaml end to end: a real Prefect server, a process work pool and worker.

Everything runs as separate processes, as a user runs it: `prefect server start`, `prefect work-pool create`,
`prefect --no-prompt deploy --all`, `prefect worker start`; the run is triggered through the API and must
complete and register a model version in the MLflow store the worker's environment points at.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_core import registry
from mlops_core.settings import PROJECT_ROOT, Settings
from tooling import processes as server_processes

PREFECT = str(PROJECT_ROOT / ".venv" / "bin" / "prefect")
POOL = "mlops-local"
DEPLOYMENT = "training/train"

SERVER_START_TIMEOUT = 60  # about 14 s on a new database on 2 cores
CLI_TIMEOUT = 60
FLOW_RUN_TIMEOUT = 90


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
@pytest.mark.timeout(300)
def test_training_deployment_runs_on_a_process_worker(
    tmp_path: Path, settings: Settings, loan_batches: Path, processes: _Processes
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
