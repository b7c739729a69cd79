"""Serving speed in one run: the project's Bento service against its peers, on the same model and machine.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--connections 32 64] [--workers 2] [--quick]

One row per request, against 127.0.0.1. Servers, each with ``--workers`` worker processes and the same
registered model: the bare ASGI echo app (the HTTP floor, uvicorn), the seed's Flask app (gunicorn), a plain
FastAPI app (uvicorn), ``mlflow models serve``, and ``bentoml serve services.service:PredictionService`` with
API keys, validation, rate limit and the durable prediction log on. Then ``/predict_batch`` on ``--batch-rows``
rows against in-process ``predict_proba`` on the same rows. The load generator (aiohttp, one process) shares
the cores with the servers: its CPU per request is reported beside the servers' own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import httpx
import psutil

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import mlops_core  # noqa: E402,F401  (telemetry off)
from benchmarks.machine import machine_info  # noqa: E402
from mlops_core import registry  # noqa: E402
from mlops_core.api_keys import KeyStore  # noqa: E402
from mlops_core.settings import Settings  # noqa: E402
from stages.data.generator import generate_day  # noqa: E402
from tests.service.conftest import free_port, service_environment, start_service, stop_group, wait_until  # noqa: E402
from tests.service.training import register_model  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PEERS_DIR = BENCH_DIR / "peers"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "serving.md"
PROJECT = "bento service (keys, validation, log on)"
ECHO = "ASGI echo (uvicorn, floor)"
BENTO_ECHO = "ASGI echo in BentoML (floor)"
FLOORS = (ECHO, BENTO_ECHO)


@dataclass
class Load:
    """One measured window against one server."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float
    server_cpu_s: float
    load_average: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Setup:
    root: Path
    settings: Settings
    version: int
    model_path: Path
    keys: list[str]
    row: dict
    batch: list[dict] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    service_runtime: str = "not started"


@dataclass
class Peer:
    label: str
    start: Callable[[Setup, int], tuple[subprocess.Popen, str]]
    path: str
    body: Callable[[dict], dict]
    headers: Callable[[Setup], list[dict[str, str]]] = lambda setup: [{}]


def server_cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU of a server and all its worker processes so far."""
    total = 0.0
    try:
        leader = psutil.Process(process.pid)
        for proc in [leader, *leader.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


async def load(
    url: str, body: bytes, headers: list[dict[str, str]], seconds: float, connections: int, server: subprocess.Popen
) -> Load:
    """``connections`` clients each sending the next request as soon as the last one is answered; client ``i``
    sends ``headers[i % len(headers)]`` (its own API key where the server checks keys)."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    common = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=common, timeout=timeout) as session:

        async def client(index: int, deadline: float, record: bool) -> None:
            nonlocal errors
            own = headers[index % len(headers)]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=own) as response:
                        await response.read()
                        failed = response.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    failed = True
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += failed

        await asyncio.gather(*(client(i, time.perf_counter() + 2, False) for i in range(connections)))  # warm-up
        load_average = os.getloadavg()[0]
        cpu_client, cpu_server = time.process_time(), server_cpu_seconds(server)
        began = time.perf_counter()
        await asyncio.gather(*(client(i, began + seconds, True) for i in range(connections)))
        elapsed = time.perf_counter() - began
        client_cpu, server_cpu = time.process_time() - cpu_client, server_cpu_seconds(server) - cpu_server
    latencies.sort()
    return Load(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
        load_average=load_average,
    )


def _uvicorn(app: str, setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = _spawn(args, setup, "uvicorn")
    return process, f"http://127.0.0.1:{port}"


def _spawn(args: list[str], setup: Setup, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    with (setup.root / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=PEERS_DIR,
            env={**os.environ, "MODEL_PATH": str(setup.model_path), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(process: subprocess.Popen, probe: Callable[[], bool], what: str) -> None:
    try:
        wait_until(probe, 120, what)
    except TimeoutError:
        stop_group(process)
        raise


def start_echo(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    process, url = _uvicorn("echo:app", setup, workers)
    _wait_for(process, lambda: httpx.post(url, json={}, timeout=2).status_code == 200, "echo app")
    return process, url


def start_bento_echo(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"BENCH_WORKERS": str(workers), "BENCH_PORT": str(port), "BENTOML_HOME": str(setup.root / "bentoml")}
    process = _spawn([str(VENV_BIN / "bentoml"), "serve", "bento_echo:EchoService"], setup, "bento-echo", env)
    url = f"http://127.0.0.1:{port}"
    _wait_for(process, lambda: httpx.post(f"{url}/echo", json={}, timeout=2).status_code == 200, "BentoML echo")
    return process, url


def start_flask(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "seed_flask:app"]
    process = _spawn([*args, "--log-level", "warning"], setup, "flask")
    url = f"http://127.0.0.1:{port}"
    probe = lambda: httpx.post(f"{url}/predict", json={}, timeout=2).status_code == 500  # noqa: E731
    _wait_for(process, probe, "Flask app")
    return process, url


def start_fastapi(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    process, url = _uvicorn("fastapi_app:app", setup, workers)
    probe = lambda: httpx.post(f"{url}/predict", json=setup.row, timeout=2).status_code == 200  # noqa: E731
    _wait_for(process, probe, "FastAPI app")
    return process, url


def start_mlflow(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    model_uri = f"models:/{setup.settings.mlflow.registered_model}/{setup.version}"
    args = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", model_uri, "-h", "127.0.0.1", "-p", str(port)]
    args += ["--workers", str(workers), "--env-manager", "local"]
    env = {"MLFLOW_TRACKING_URI": setup.settings.tracking_uri, "MLFLOW_REGISTRY_URI": setup.settings.registry_uri}
    process = _spawn(args, setup, "mlflow", env)
    url = f"http://127.0.0.1:{port}"
    _wait_for(process, lambda: httpx.get(f"{url}/ping", timeout=2).status_code == 200, "mlflow models serve")
    return process, url


def project_environment(setup: Setup, workers: int) -> dict[str, str]:
    """Every feature on. Each client has its own key; the per-key rate limit is checked and recorded on every
    request, with a limit the run does not reach."""
    return service_environment(
        setup.settings.state_dir,
        MLOPS_SERVICE__WORKERS=str(workers),
        MLOPS_SERVICE__PREDICTION_LOG="true",
        MLOPS_SERVICE__RATE_LIMIT=str(10**6),
        MLOPS_SERVICE__POLL_SECONDS="30",
        MLOPS_SERVICE__MAX_BATCH_ROWS=str(max(len(setup.batch), 1000)),
        MLOPS_SERVICE__MAX_BODY_BYTES=str(64 * 1024**2),
        **setup.service_env,
    )


def start_project(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    server = start_service(project_environment(setup, workers), setup.root / "bento.log", timeout=180)
    setup.service_runtime = httpx.get(f"{server.url}/readyz", timeout=10).json()["model"]["runtime"]
    return server.process, server.url


PEERS = [
    Peer(ECHO, start_echo, "/", lambda row: row),
    Peer(BENTO_ECHO, start_bento_echo, "/echo", lambda row: row),
    Peer("flask+gunicorn (seed)", start_flask, "/predict", lambda row: {"features": list(row.values())}),
    Peer("fastapi+uvicorn", start_fastapi, "/predict", lambda row: row),
    Peer("mlflow models serve", start_mlflow, "/invocations", lambda row: {"dataframe_records": [row]}),
    Peer(PROJECT, start_project, "/predict", lambda row: row, lambda setup: [{"X-API-Key": k} for k in setup.keys]),
]


def prepare(root: Path, batch_rows: int, clients: int) -> Setup:
    """Register a logistic-regression champion, create a key per client, pick a request row and a batch."""
    import joblib
    import mlflow.sklearn

    settings = Settings(state_dir=root / "state")
    version = register_model(settings, root / "data", seed=1)
    client = registry.connect(settings)
    client.set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(version))
    model = mlflow.sklearn.load_model(f"models:/{settings.mlflow.registered_model}/{version}")
    joblib.dump(model, root / "model.pkl")
    store = KeyStore(settings.key_store)
    keys = [store.create(f"client-{i}")[1] for i in range(clients)]
    columns = list(model.feature_names_in_)
    frame = generate_day(date(2026, 11, 2), max(batch_rows, 1), seed=3)[columns]
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return Setup(root, settings, version, root / "model.pkl", keys, rows[0], rows[:batch_rows])


def measure_batch(setup: Setup, url: str, repeat: int) -> dict[str, float]:
    """Seconds per ``/predict_batch`` call of the whole batch against in-process ``predict_proba`` on it."""
    import joblib
    import pandas as pd

    body = json.dumps({"rows": setup.batch})
    with httpx.Client(timeout=120, headers={"X-API-Key": setup.keys[0], "content-type": "application/json"}) as client:
        served = []
        for attempt in range(repeat + 1):  # the first call is a warm-up
            started = time.perf_counter()
            response = client.post(f"{url}/predict_batch", content=body)
            response.raise_for_status()
            if attempt:
                served.append(time.perf_counter() - started)
    model = joblib.load(setup.model_path)
    inprocess = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        model.predict_proba(pd.DataFrame.from_records(setup.batch, columns=list(model.feature_names_in_)))
        if attempt:
            inprocess.append(time.perf_counter() - started)
    return {
        "rows": len(setup.batch),
        "bytes": len(body),
        "served_s": statistics.median(served),
        "inprocess_s": statistics.median(inprocess),
    }


def run_peer(peer: Peer, setup: Setup, args: argparse.Namespace) -> tuple[dict[int, Load], dict | None, float]:
    started = time.perf_counter()
    process, url = peer.start(setup, args.workers)
    startup = time.perf_counter() - started
    try:
        body = json.dumps(peer.body(setup.row)).encode()
        results = {
            n: asyncio.run(load(url + peer.path, body, peer.headers(setup), args.seconds, n, process))
            for n in args.connections
        }
        batch = measure_batch(setup, url, args.batch_repeat) if peer.label == PROJECT and setup.batch else None
    finally:
        stop_group(process, signal.SIGTERM)
    return results, batch, startup


def report(
    results: dict[str, dict[int, Load]], batch: dict | None, startups: dict[str, float], args: argparse.Namespace
) -> str:
    peers = [label for label in results if label != PROJECT and label not in FLOORS]
    lines = [
        f"### Serving: one row per request, {args.workers} workers per server, {args.seconds:g} s per window",
        "",
        "| connections | server | req/s | p50 ms | p99 ms | errors | server CPU ms/req | client CPU ms/req "
        "| load avg | req/s vs best peer |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.connections:
        best = max((results[p][n].rps for p in peers), default=0.0)
        for label, by_connections in results.items():
            r = by_connections[n]
            ratio = f"{r.rps / best:.2f}x" if best else "–"
            lines.append(
                f"| {n} | {label} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} "
                f"| {1000 * r.server_cpu_s / max(r.requests, 1):.2f} | {1000 * r.client_cpu_s / max(r.requests, 1):.2f} "
                f"| {r.load_average:.1f} | {ratio} |"
            )
    lines += ["", "Server start-up to first answer, s: " + ", ".join(f"{k} {v:.1f}" for k, v in startups.items())]
    if batch:
        served, inprocess = batch["rows"] / batch["served_s"], batch["rows"] / batch["inprocess_s"]
        lines += [
            "",
            f"### Batch: `/predict_batch` with {batch['rows']:,} rows ({batch['bytes'] / 1e6:.1f} MB of JSON), "
            f"median of {args.batch_repeat} calls",
            "",
            "| path | s per batch | rows/s | ratio |",
            "|---|---:|---:|---:|",
            f"| in-process `predict_proba` (scikit-learn, DataFrame from the same rows) | {batch['inprocess_s']:.3f} "
            f"| {inprocess:,.0f} | 1.00x |",
            f"| {PROJECT}: HTTP, validation, scoring, log commit | {batch['served_s']:.3f} | {served:,.0f} "
            f"| {served / inprocess:.2f}x |",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per server and concurrency")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64], help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of every server")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows in one /predict_batch call (0: skip)")
    parser.add_argument("--batch-repeat", type=int, default=5, help="timed /predict_batch calls")
    parser.add_argument("--servers", nargs="+", help="only the servers whose label contains one of these words")
    parser.add_argument(
        "--service-env", nargs="+", default=[], metavar="NAME=VALUE", help="extra settings of the project's service"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s windows, 32 connections, 1000-row batch")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"markdown report ({DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.connections, args.batch_rows, args.batch_repeat = 2, [32], 1000, 2
    return args


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    began = time.perf_counter()
    info = machine_info(["bentoml", "scikit-learn", "onnxruntime", "mlflow", "uvicorn", "gunicorn", "aiohttp"])
    info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    peers = [p for p in PEERS if not args.servers or any(w in p.label for w in args.servers)]
    results: dict[str, dict[int, Load]] = {}
    startups: dict[str, float] = {}
    batch = None
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        setup = prepare(Path(tmp), args.batch_rows, max(args.connections))
        setup.service_env = dict(item.split("=", 1) for item in args.service_env)
        for peer in peers:
            print(f"[serving] {peer.label} ...", file=sys.stderr, flush=True)
            results[peer.label], peer_batch, startups[peer.label] = run_peer(peer, setup, args)
            batch = peer_batch or batch
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    info["project service scores with"] = setup.service_runtime
    if args.service_env:
        info["project service settings"] = " ".join(args.service_env)
    info["run"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - began:.0f} s"
    text = report(results, batch, startups, args)
    text += "\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
