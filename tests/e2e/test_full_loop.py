"""The local stack and the whole loop, as a user runs them: ``mlops stack up|status|down`` and ``mlops loop``.

Everything runs as separate processes on free ports with a temporary state directory. Whatever happens, the
stack is stopped at the end and every process it recorded is killed by process group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlops_core.settings import PROJECT_ROOT
from tooling import processes

MLOPS = str(Path(sys.executable).parent / "mlops")


class StackCli:
    """Runs the CLI against one temporary state directory and stack."""

    def __init__(self, state_dir: Path, gx_context: Path) -> None:
        self.state_dir = state_dir
        self.pid_file = state_dir / "stack" / "pids.json"
        # No profile, API URL or MLOPS_* setting of the user's leaks in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLOPS_"))}
        self.env.update(
            MLOPS_STATE_DIR=str(state_dir),
            MLOPS_VALIDATION__CONTEXT_DIR=str(gx_context),
            MLOPS_STACK__PREFECT_PORT=str(processes.free_port()),
            MLOPS_STACK__MLFLOW_PORT=str(processes.free_port()),
            MLOPS_SERVICE__PORT=str(processes.free_port()),
            MLOPS_STACK__STOP_TIMEOUT_SECONDS="5",
            MLOPS_SERVICE__POLL_SECONDS="2",
        )

    def __call__(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MLOPS, *args], env={**self.env, **env}, cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def pids(self) -> dict[str, int]:
        if not self.pid_file.exists():
            return {}
        return {name: entry["pid"] for name, entry in json.loads(self.pid_file.read_text()).items()}

    def descendants(self) -> list[psutil.Process]:
        found = []
        for pid in self.pids().values():
            try:
                leader = psutil.Process(pid)
                found += [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found


@pytest.fixture
def cli(tmp_path: Path, gx_context: Path) -> Iterator[StackCli]:
    stack = StackCli(tmp_path / "state", gx_context)
    try:
        yield stack
    finally:
        recorded = stack.pids()
        stack("stack", "down", timeout=120)
        for pid in recorded.values():  # whatever `down` missed, stopped the same way
            processes.stop_group(pid, timeout=5)


def _out(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"


def test_a_port_in_use_is_named_and_nothing_starts(cli: StackCli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("stack", "up", timeout=60, MLOPS_STACK__MLFLOW_PORT=str(port))
    assert result.returncode == 1, _out(result)
    assert f"port {port} for mlflow" in result.stderr and "already in use" in result.stderr, _out(result)
    assert cli.pids() == {}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stack_up_twice_then_the_full_loop_then_down(cli: StackCli) -> None:
    first = cli("stack", "up", timeout=240)
    assert first.returncode == 0, _out(first)
    pids = cli.pids()
    assert set(pids) == {"prefect-server", "mlflow", "prefect-worker", "service"}
    assert all(processes.is_alive(pid) for pid in pids.values())

    again = cli("stack", "up", timeout=60)
    assert again.returncode == 0, _out(again)
    assert cli.pids() == pids, "a second `stack up` started new servers"
    assert "starting" not in again.stderr, _out(again)
    status = cli("stack", "status", timeout=60)
    assert status.stdout.count(" up ") == 4, _out(status)
    logs = cli("stack", "logs", "prefect-server", "-n", "3", timeout=60)
    assert logs.returncode == 0 and 1 <= logs.stdout.count("prefect-server | ") <= 3, _out(logs)

    running = cli.descendants()
    result = cli("loop", "--rows-per-day", "5000", timeout=480)
    assert result.returncode == 0, _out(result)
    summary = json.loads((cli.state_dir / "stack" / "last_loop.json").read_text())

    versions = summary["versions"]
    assert [v["version"] for v in versions] == [1, 2], _out(result)
    assert versions[0]["decision"] == "promoted" and versions[0]["semver"] == "1.0.0"
    assert summary["champion_before"] is None
    ok_check, drift_check = summary["checks"]
    assert ok_check["status"] == "ok", ok_check
    assert drift_check["status"] == "alert" and drift_check["triggered"], drift_check
    assert drift_check["drift_share"] >= 0.3
    assert summary["retraining_run"] == drift_check["retraining_run_id"]
    assert summary["retraining_run_name"].startswith("retrain after drift"), summary
    assert summary["champion_after"] == 2, f"the gate kept version 1: {versions[1]['reasons']}"
    assert [(m["alias"], m["from"], m["to"]) for m in summary["alias_moves"]] == [
        ("champion", None, 1),
        ("champion", 1, 2),
    ]
    assert summary["served_versions"].get("2", 0) >= 20
    assert summary["requests"]["during switch"] > 0
    assert sum(summary["requests"][p] for p in ("normal", "drifted", "during switch")) > 900
    assert {p: summary["failures"].get(p, 0) for p in ("normal", "drifted", "during switch")} == {
        "normal": 0,
        "drifted": 0,
        "during switch": 0,
    }
    assert "evidently/drift_report.html" in summary["urls"]["evidently_report"]

    # A command run by hand finds the stack that is up and runs against its Prefect server and MLflow.
    prefect_ui = f"http://127.0.0.1:{cli.env['MLOPS_STACK__PREFECT_PORT']}"
    check = cli("monitor", timeout=240)
    assert check.returncode == 0, _out(check)
    assert any(line.startswith(("ok:", "skipped:", "alert:")) for line in check.stdout.splitlines()), _out(check)
    assert f"View at {prefect_ui}/runs/flow-run/" in check.stdout + check.stderr, _out(check)

    # `down` stops everything the stack started, flow-run processes included.
    down = cli("stack", "down", timeout=120)
    assert "stopped service, prefect-worker, mlflow, prefect-server" in down.stdout, _out(down)
    assert not cli.pid_file.exists()
    _, alive = psutil.wait_procs(running, timeout=10)
    assert alive == [], f"still running after down: {alive}"
