"""Long-running server processes: start in their own session, wait until healthy, stop by process group.

Shared by the local stack (``mlops stack``) and the tests that start real servers, so both stop processes the
same way: a Prefect worker only exits on a second SIGINT, and the process worker starts each flow run in a
session of its own, out of reach of a group signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on the port. SO_REUSEADDR, as servers set it: TIME_WAIT does not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: nothing written)"
    return f"--- {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start a server in a new session (its own process group), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """True when ``pid`` runs and, given its start time, is still the same process (pids are reused)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and (
            create_time is None or abs(proc.create_time() - create_time) < 1
        )
    except psutil.NoSuchProcess:
        return False


def create_time(pid: int) -> float:
    return psutil.Process(pid).create_time()


def stop_group(
    pid: int,
    timeout: float = STOP_TIMEOUT,
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGINT, signal.SIGKILL),
) -> None:
    """Send ``signals`` to the group in turn, each after a bounded wait, until the leader is gone.

    The default is SIGINT twice (a Prefect worker only exits on the second), then SIGKILL. ``pid`` leads its
    own process group; descendants that left the group (flow runs, BentoML workers) are killed by pid.
    """
    try:
        leader = psutil.Process(pid)
        descendants = leader.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for sig in signals:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        _, alive = psutil.wait_procs([leader], timeout=timeout if sig != signal.SIGKILL else 5)
        if not alive:
            break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(descendants, timeout=timeout if signals[-1] != signal.SIGKILL else 1)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=5)


def poll(check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.5) -> object:
    """Call ``check`` until it returns something truthy (HTTP errors count as not yet); bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if result := check():
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")


def wait_until_healthy(
    url: str, *, timeout: float, alive: Callable[[], bool], what: str, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log's tail, when the process has exited."""

    def healthy() -> bool:
        if not alive():
            raise RuntimeError(f"{what} exited before it was healthy\n{tail(log) if log else ''}")
        return httpx.get(url, timeout=2).status_code == 200

    try:
        poll(healthy, timeout=timeout, what=f"{what} healthy at {url}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{tail(log) if log else ''}") from None
