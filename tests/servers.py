"""Throwaway database servers for tests: PostgreSQL and Redis from Debian's packages, on free 127.0.0.1 ports
with their state in a temporary directory, stopped by process id. ``.ci/run`` installs the packages when they
are missing; without them the tests that need a server are skipped and say why.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from tooling.processes import free_port, poll, stop_group, tail

REDIS_SERVER = "/usr/bin/redis-server"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres system user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def postgres_cluster(databases: tuple[str, ...]) -> Iterator[str]:
    """A fresh cluster with ``databases`` created; yields ``user@host:port`` for ``postgresql+psycopg://...``."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package 'postgresql'); PostgreSQL path not tested")
    # Outside pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as connection:
            for name in databases:
                connection.execute(f"CREATE DATABASE {name}")
        yield f"postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """A Redis without persistence in ``root`` (its log is ``root/redis.log``); yields its ``redis://`` URL."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server not found (Debian package 'redis-server'); the shared-state path not tested")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "", "--appendonly", "no"]
    with (root / "redis.log").open("ab") as log:
        server = subprocess.Popen(
            [REDIS_SERVER, *arguments], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            if server.poll() is not None:
                raise RuntimeError(f"redis-server exited: {tail(root / 'redis.log')}") from None
            return False

    try:
        poll(answers, timeout=30, what="Redis server", interval=0.1)
        yield url
    finally:
        stop_group(server.pid, signals=(signal.SIGTERM, signal.SIGKILL))
        server.wait(10)


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """An HTTP server on a free 127.0.0.1 port recording the JSON body of every POST; yields its URL and the
    bodies received so far (a list that fills as requests arrive)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server convention)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port, chosen by the system
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
