"""The local stack behind ``mlops stack up|down|status``: Prefect server and worker, MLflow server, Bento service.

Everything listens on 127.0.0.1 at the ports in ``settings.stack`` (the service at ``settings.service.port``),
keeps its state and logs under ``<state_dir>``, and is recorded in ``<state_dir>/stack/pids.json`` with each
process's start time, so ``up`` never starts a second copy of a live server and ``down`` stops exactly the
processes ``up`` started (by process group), never a stranger that reused a pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from mlops_core.settings import PROJECT_ROOT, Settings
from tooling import processes

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
CLI_TIMEOUT = 180  # `prefect deploy --all` imports every flow module: tens of seconds on 2 cores


def declared_deployment(name: str) -> dict:
    """A deployment as the project's prefect.yaml declares it (what `stack up` applies), read without a server."""
    import yaml

    deployments = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    (deployment,) = [d for d in deployments if d["name"] == name]
    return deployment


class StackError(RuntimeError):
    """A server could not start: port taken, exited early or not healthy in time (the message says which)."""


@dataclass
class Running:
    name: str
    pid: int
    create_time: float
    url: str
    log: str

    @property
    def alive(self) -> bool:
        return processes.is_alive(self.pid, self.create_time)


class Stack:
    """The servers of one state directory, in start order."""

    ORDER = ("prefect-server", "mlflow", "prefect-worker", "service")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.stack_dir
        self.pid_file = self.dir / "pids.json"
        self.prefect_url = f"http://{HOST}:{settings.stack.prefect_port}"
        self.prefect_api = f"{self.prefect_url}/api"
        self.mlflow_url = f"http://{HOST}:{settings.stack.mlflow_port}"
        self.service_url = f"http://{HOST}:{settings.service.port}"

    def environment(self) -> dict[str, str]:
        """What every server, the worker's flow runs and a client of the stack need to see the same state."""
        return {
            "MLOPS_STATE_DIR": str(self.settings.state_dir),
            "MLOPS_VALIDATION__CONTEXT_DIR": str(self.settings.validation.context_dir),
            "MLOPS_MLFLOW__TRACKING_URI": self.mlflow_url,
            "MLOPS_SERVICE__PORT": str(self.settings.service.port),
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_HOME": str(self.settings.prefect_home),
            "BENTOML_HOME": str(self.settings.state_dir / "bentoml"),
        }

    def client_environment(self) -> dict[str, str]:
        """What a command in another process needs to use the servers of this stack that are up: none up,
        nothing (the embedded defaults)."""
        up = self.status()
        environment = {}
        if up["prefect-server"]:
            environment["PREFECT_API_URL"] = self.prefect_api
        if up["mlflow"]:
            environment["MLOPS_MLFLOW__TRACKING_URI"] = self.mlflow_url
        return environment

    def log_file(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.environment()}
        env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "2")  # runs start within seconds, not the default 10
        if self.settings.stack.prefect_database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.settings.stack.prefect_database_url
        return env

    # -- records ---------------------------------------------------------------------------------------------

    def recorded(self) -> dict[str, Running]:
        if not self.pid_file.exists():
            return {}
        return {name: Running(**entry) for name, entry in json.loads(self.pid_file.read_text()).items()}

    def _save(self, records: dict[str, Running]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({name: asdict(r) for name, r in records.items()}, indent=2))

    def status(self) -> dict[str, Running | None]:
        """Each server's record when its process is alive, else None."""
        records = self.recorded()
        return {name: r if (r := records.get(name)) and r.alive else None for name in self.ORDER}

    # -- up --------------------------------------------------------------------------------------------------

    def _commands(self) -> dict[str, tuple[list[str], int | None, str]]:
        """Per server: command line, port (None: listens on none) and the URL shown to the user."""
        state = self.settings.state_dir
        stack = self.settings.stack
        return {
            "prefect-server": (
                [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(stack.prefect_port)],
                stack.prefect_port,
                self.prefect_url,
            ),
            "mlflow": (
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    stack.mlflow_backend_uri or f"sqlite:///{state / 'mlflow.db'}",
                    "--artifacts-destination",
                    stack.mlflow_artifacts_destination or str(state / "mlartifacts"),
                    "--host",
                    HOST,
                    "--port",
                    str(stack.mlflow_port),
                    "--workers",
                    "1",
                    # Its security middleware refuses Host headers it does not list; entries need the port.
                    "--allowed-hosts",
                    "localhost:*,127.0.0.1:*",
                ],  # fmt: skip
                stack.mlflow_port,
                self.mlflow_url,
            ),
            "prefect-worker": (
                [str(BIN / "prefect"), "worker", "start", "--pool", stack.work_pool, "--type", "process"],
                None,
                f"{self.prefect_url}/work-pools/work-pool/{stack.work_pool}",
            ),
            "service": (
                [str(BIN / "bentoml"), "serve", "services.service:PredictionService"],
                self.settings.service.port,
                self.service_url,
            ),
        }

    def up(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, Running]:
        """Start what is not running, each waited for until healthy; on failure stop what this call started."""
        records = {name: r for name, r in self.recorded().items() if r.alive}
        commands = self._commands()
        missing = [name for name in self.ORDER if name not in records]
        for name in missing:
            port = commands[name][1]
            if port is not None and processes.port_in_use(port, HOST):
                raise StackError(f"port {port} for {name} on {HOST} is already in use by another program")
        started: list[str] = []

        def start(name: str) -> None:
            if name in missing:
                progress(f"starting {name}")
                records[name] = self._start(name, commands[name])
                started.append(name)
                self._save(records)

        def wait(name: str) -> None:
            if name in started:
                self._wait_healthy(records[name])
                progress(f"{name} is up: {records[name].url}")

        try:
            # The slow starters side by side: MLflow migrates its database while deployments are applied.
            start("prefect-server")
            start("mlflow")
            wait("prefect-server")
            if "prefect-worker" in missing:
                progress("applying the work pool and deployments of prefect.yaml")
                self._apply_deployments()
            start("prefect-worker")
            wait("mlflow")
            start("service")
            wait("prefect-worker")
            wait("service")
        except BaseException:
            for name in reversed(started):
                processes.stop_group(records.pop(name).pid, self.settings.stack.stop_timeout_seconds)
            self._save(records)
            raise
        return records

    def _start(self, name: str, command: tuple[list[str], int | None, str]) -> Running:
        args, _, url = command
        log = self.log_file(name)
        proc = processes.start(args, env=self._env(), cwd=PROJECT_ROOT, log=log)
        return Running(name, proc.pid, processes.create_time(proc.pid), url, str(log))

    def _wait_healthy(self, record: Running) -> None:
        timeout = self.settings.stack.start_timeout_seconds
        checks = {
            "prefect-server": f"{self.prefect_api}/health",
            "mlflow": f"{self.mlflow_url}/health",
            "service": f"{self.service_url}/livez",  # /readyz waits for a champion, which a new stack lacks
        }
        try:
            if record.name in checks:
                processes.wait_until_healthy(
                    checks[record.name], timeout=timeout, alive=lambda: record.alive, what=record.name,
                    log=Path(record.log),
                )  # fmt: skip
            else:
                self._wait_worker_online(record, timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise StackError(str(exc)) from exc

    def _wait_worker_online(self, record: Running, timeout: float) -> None:
        """The worker serves no HTTP: it is up once the server lists it online in its pool."""
        pool = self.settings.stack.work_pool

        def online() -> bool:
            if not record.alive:
                raise RuntimeError(f"prefect-worker exited\n{processes.tail(Path(record.log))}")
            workers = httpx.post(f"{self.prefect_api}/work_pools/{pool}/workers/filter", json={}, timeout=5)
            return workers.status_code == 200 and any(w.get("status") == "ONLINE" for w in workers.json())

        processes.poll(online, timeout=timeout, what=f"prefect-worker online in pool {pool}")

    def _apply_deployments(self) -> None:
        env = {**self._env(), "PREFECT_CLI_PROMPT": "false"}
        pool = self.settings.stack.work_pool
        for args in (
            ["work-pool", "create", pool, "--type", "process", "--overwrite"],
            ["--no-prompt", "deploy", "--all"],
        ):
            result = subprocess.run(
                [str(BIN / "prefect"), *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                timeout=CLI_TIMEOUT, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(f"prefect {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    # -- down ------------------------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the recorded servers in reverse start order; returns the names of those that were running."""
        records = self.recorded()
        stopped = []
        for name in reversed(self.ORDER):
            record = records.get(name)
            if record and record.alive:
                processes.stop_group(record.pid, self.settings.stack.stop_timeout_seconds)
                stopped.append(name)
        self.pid_file.unlink(missing_ok=True)
        return stopped


def last_lines(log: Path, count: int) -> list[str]:
    """The last ``count`` lines of a log, read from its end (a server log can be large)."""
    if count == 0:
        return []
    with log.open("rb") as file:
        file.seek(0, os.SEEK_END)
        end = position = file.tell()
        chunk = b""
        while position > 0 and chunk.count(b"\n") <= count:
            position = max(0, position - 65536)
            file.seek(position)
            chunk = file.read(end - position)
    return chunk.decode(errors="replace").splitlines()[-count:]


def follow_logs(logs: dict[str, Path], interval: float = 0.5) -> Iterator[tuple[str, str]]:
    """New lines of each log as they are written (``tail -f`` of several files), until interrupted."""
    files = {name: path.open("r", errors="replace") for name, path in logs.items()}
    try:
        for file in files.values():
            file.seek(0, os.SEEK_END)
        while True:
            quiet = True
            for name, file in files.items():
                while line := file.readline():
                    quiet = False
                    yield name, line.rstrip("\n")
            if quiet:
                time.sleep(interval)
    finally:
        for file in files.values():
            file.close()
