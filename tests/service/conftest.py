"""Real servers for the service tests: an MLflow tracking server as the registry and ``bentoml serve``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from mlops_core.settings import PROJECT_ROOT, Settings
from stages.data.generator import generate_day
from tooling import processes
from tooling.processes import free_port

VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin"


def wait_until(check, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> None:
    """Stop a server and every worker it spawned: ``sig`` (BentoML drains on SIGTERM), then SIGKILL."""
    signals = (signal.SIGKILL,) if sig == signal.SIGKILL else (sig, signal.SIGKILL)
    processes.stop_group(process.pid, timeout=grace, signals=signals)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)  # reap it


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key} if key else {}, timeout=30)


def service_environment(state_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(
        {
            "MLOPS_STATE_DIR": str(state_dir),
            "BENTOML_HOME": str(state_dir / "bentoml"),
            "MLOPS_SERVICE__POLL_SECONDS": "1",
            "MLOPS_SERVICE__WORKERS": "2",
            **overrides,
        }
    )
    return env


def start_service(env: dict[str, str], log: Path, timeout: float = 90) -> Server:
    """``bentoml serve`` on a free port, returned once /readyz answers 200."""
    port = free_port()
    env = {**env, "MLOPS_SERVICE__PORT": str(port)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "bentoml"), "serve", "services.service:PredictionService"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    ready_workers: set[int] = set()

    def every_worker_ready() -> bool:
        # Each worker loads the model on its own: wait until every one of them has answered ready.
        response = httpx.get(f"{server.url}/readyz", timeout=2)
        if response.status_code == 200:
            ready_workers.add(response.json()["worker"])
        return len(ready_workers) >= int(env.get("MLOPS_SERVICE__WORKERS", "1"))

    try:
        wait_until(every_worker_ready, timeout, "every service worker ready", interval=0.05)
    except TimeoutError:
        stop_group(process)
        raise AssertionError(f"service did not become ready; log:\n{log.read_text()[-4000:]}") from None
    return server


@pytest.fixture(scope="session")
def feature_rows() -> list[dict]:
    """Rows in the training distribution, as a client would send them (JSON types)."""
    frame = generate_day(date(2026, 11, 2), 50, seed=1)
    frame = frame.drop(columns=["defaulted", "applicant_id", "application_ts"])
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def start_mlflow(root: Path, port: int) -> subprocess.Popen:
    """A tracking server on ``port`` over the store in ``root``; started again on the same store after a stop."""
    with (root / "mlflow.log").open("ab") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--allowed-hosts",
                "localhost:*,127.0.0.1:*",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, 90, "MLflow server")
    except TimeoutError:
        stop_group(process)
        raise
    return process


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """A tracking server on a free port; tests may stop it to take the registry away."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    process = start_mlflow(root, port)
    try:
        yield f"http://127.0.0.1:{port}", process, root / "artifacts"
    finally:
        stop_group(process)


def registry_settings(state_dir: Path, tracking_uri: str | None = None) -> Settings:
    mlflow = {"tracking_uri": tracking_uri, "artifact_root": "mlflow-artifacts:/"} if tracking_uri else {}
    return Settings(state_dir=state_dir, mlflow=mlflow)
