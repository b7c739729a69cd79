"""Serving speed in one run: the project's Bento service against its peers, on the same models and machine.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--connections 32] [--workers 2] [--quick]

Every candidate type the training flow can produce (``--candidates``, all by default) is fitted on the same
generated data, logged and registered; the training stage's own ``select_best`` names the one the loop would
promote. For each, one row per request against 127.0.0.1, servers each with ``--workers`` worker processes
serving that version: the seed's Flask app (gunicorn), a plain FastAPI app (uvicorn), ``mlflow models serve``
(the peers, one BLAS/OpenMP thread per worker) and ``bentoml serve services.service:PredictionService`` with
API keys, validation, rate limit and the durable prediction log on; once per run the bare ASGI echo apps (the
HTTP floors). Closed loop (``--connections`` clients) for capacity and CPU per request, then an open loop
(``benchmarks/http_load.py``) at 25/50/75 % of the project service's measured capacity for its latency, from
each request's scheduled send time, beside the latency the service's access log measured for the same requests
(its own stack, from the moment a worker's loop took the request to the answer's last byte). Then
``/predict_batch`` on ``--batch-rows`` rows as JSON, Arrow IPC stream and Parquet against in-process
``predict_proba`` on the same rows. The load generators (``benchmarks/http_load.py``: keep-alive connections,
httptools, uvloop; one process) share the cores with the servers: their CPU per request is reported beside the
servers' own.
"""

from __future__ import annotations

import argparse
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
from datetime import UTC, date, datetime, timedelta
from math import nan
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

import httpx
import psutil
import uvloop

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import mlops_core  # noqa: E402,F401  (telemetry off)
from benchmarks.http_load import OpenLoopResult, closed_loop, open_loop  # noqa: E402
from benchmarks.machine import machine_info  # noqa: E402
from mlops_core import registry  # noqa: E402
from mlops_core.api_keys import KeyStore  # noqa: E402
from mlops_core.settings import CandidateName, Settings  # noqa: E402
from stages.data.generator import generate_day, write_batches  # noqa: E402
from stages.training.candidates import select_best  # noqa: E402
from tests.helpers import register_trained, train_quickly  # noqa: E402
from tests.service.conftest import free_port, service_environment, start_service, stop_group, wait_until  # noqa: E402

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
class Candidate:
    """One registered candidate type: its version, its pickled pipeline for the peers, its holdout score."""

    name: str
    version: int
    model_path: Path
    score: float
    promoted: bool = False
    runtime: str = "not started"  # what scores its rows in the project service


@dataclass
class Setup:
    root: Path
    settings: Settings
    candidates: list[Candidate]
    keys: list[str]
    row: dict
    batch: list[dict] = field(default_factory=list)
    service_env: dict[str, str] = field(default_factory=dict)
    current: Candidate | None = None  # what the servers being started serve

    @property
    def version(self) -> int:
        assert self.current is not None
        return self.current.version

    @property
    def model_path(self) -> Path:
        assert self.current is not None
        return self.current.model_path


@dataclass
class Peer:
    label: str
    start: Callable[[Setup, int], tuple[subprocess.Popen, str]]
    path: str
    body: Callable[[dict], dict]
    headers: Callable[[Setup], list[dict[str, str]]] = lambda setup: [{}]


def _server_processes(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        leader = psutil.Process(process.pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def server_cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU of a server and all its worker processes so far."""
    total = 0.0
    for proc in _server_processes(process):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def server_run_queue_seconds(process: subprocess.Popen) -> float:
    """Time the threads of a server and its workers spent runnable but waiting for a core so far (Linux schedstat):
    what a busy machine adds to every latency, however fast the service is. NaN where the kernel does not say."""
    total = 0
    for proc in _server_processes(process):
        try:
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return float("nan")
    return total / 1e9


def load(
    url: str, body: bytes, headers: list[dict[str, str]], seconds: float, connections: int, server: subprocess.Popen
) -> Load:
    """``connections`` clients each sending the next request as soon as the last one is answered, after a 2 s
    warm-up; client ``i`` sends ``headers[i % len(headers)]`` (its own API key where the server checks keys)."""
    uvloop.run(closed_loop(url, body, headers, connections=connections, seconds=2))  # warm-up
    load_average = os.getloadavg()[0]
    cpu_server = server_cpu_seconds(server)
    result = uvloop.run(closed_loop(url, body, headers, connections=connections, seconds=seconds))
    server_cpu = server_cpu_seconds(server) - cpu_server
    return Load(
        requests=result.requests,
        errors=result.errors,
        seconds=result.seconds,
        p50_ms=statistics.median(result.latencies_ms),
        p99_ms=result.latencies_ms[max(int(result.requests * 0.99) - 1, 0)],
        client_cpu_s=result.client_cpu_ms * result.requests / 1000,
        server_cpu_s=server_cpu,
        load_average=load_average,
    )


def _uvicorn(app: str, setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = _spawn(args, setup, "uvicorn")
    return process, f"http://127.0.0.1:{port}"


# A peer's worker with the libraries' default thread pools spins one thread per core for every one-row call.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _spawn(args: list[str], setup: Setup, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    with (setup.root / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=PEERS_DIR,
            # mlflow models serve starts uvicorn by name: the environment's scripts come first on the PATH.
            env={
                **os.environ,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                **ONE_THREAD,
                "MODEL_PATH": str(setup.model_path),
                **(env or {}),
            },  # fmt: skip
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(process: subprocess.Popen, probe: Callable[[], bool], what: str, log: Path) -> None:
    try:
        wait_until(probe, 120, what)
    except TimeoutError as exc:
        stop_group(process)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no log)"
        raise TimeoutError(f"{exc}; the end of {log.name}:\n{tail}") from exc


def start_echo(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    process, url = _uvicorn("echo:app", setup, workers)
    _wait_for(
        process, lambda: httpx.post(url, json={}, timeout=2).status_code == 200, "echo app", setup.root / "uvicorn.log"
    )
    return process, url


def start_bento_echo(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"BENCH_WORKERS": str(workers), "BENCH_PORT": str(port), "BENTOML_HOME": str(setup.root / "bentoml")}
    process = _spawn([str(VENV_BIN / "bentoml"), "serve", "bento_echo:EchoService"], setup, "bento-echo", env)
    url = f"http://127.0.0.1:{port}"
    _wait_for(
        process,
        lambda: httpx.post(f"{url}/echo", json={}, timeout=2).status_code == 200,
        "BentoML echo",
        setup.root / "bento-echo.log",
    )
    return process, url


def start_flask(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "seed_flask:app"]
    process = _spawn([*args, "--log-level", "warning"], setup, "flask")
    url = f"http://127.0.0.1:{port}"
    probe = lambda: httpx.post(f"{url}/predict", json={}, timeout=2).status_code == 500  # noqa: E731
    _wait_for(process, probe, "Flask app", setup.root / "flask.log")
    return process, url


def start_fastapi(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    process, url = _uvicorn("fastapi_app:app", setup, workers)
    probe = lambda: httpx.post(f"{url}/predict", json=setup.row, timeout=2).status_code == 200  # noqa: E731
    _wait_for(process, probe, "FastAPI app", setup.root / "uvicorn.log")
    return process, url


def start_mlflow(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    model_uri = f"models:/{setup.settings.mlflow.registered_model}/{setup.version}"
    args = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", model_uri, "-h", "127.0.0.1", "-p", str(port)]
    args += ["--workers", str(workers), "--env-manager", "local"]
    env = {"MLFLOW_TRACKING_URI": setup.settings.tracking_uri, "MLFLOW_REGISTRY_URI": setup.settings.registry_uri}
    process = _spawn(args, setup, "mlflow", env)
    url = f"http://127.0.0.1:{port}"
    probe = lambda: httpx.get(f"{url}/ping", timeout=2).status_code == 200  # noqa: E731
    _wait_for(process, probe, "mlflow models serve", setup.root / "mlflow.log")
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
        MLOPS_SERVICE__MODEL_REF=str(setup.version),
        **setup.service_env,
    )


def start_project(setup: Setup, workers: int) -> tuple[subprocess.Popen, str]:
    server = start_service(project_environment(setup, workers), setup.root / "bento.log", timeout=180)
    assert setup.current is not None
    setup.current.runtime = httpx.get(f"{server.url}/readyz", timeout=10).json()["model"]["runtime"]
    return server.process, server.url


PEERS = [
    Peer(ECHO, start_echo, "/", lambda row: row),
    Peer(BENTO_ECHO, start_bento_echo, "/echo", lambda row: row),
    Peer("flask+gunicorn (seed)", start_flask, "/predict", lambda row: {"features": list(row.values())}),
    Peer("fastapi+uvicorn", start_fastapi, "/predict", lambda row: row),
    Peer("mlflow models serve", start_mlflow, "/invocations", lambda row: {"dataframe_records": [row]}),
    Peer(PROJECT, start_project, "/predict", lambda row: row, lambda setup: [{"X-API-Key": k} for k in setup.keys]),
]


def prepare(root: Path, batch_rows: int, clients: int, names: list[str]) -> Setup:
    """Fit, log and register each candidate type on the same data; mark the one ``select_best`` promotes; create
    a key per client, pick a request row and a batch."""
    import joblib
    import mlflow.sklearn

    settings = Settings(state_dir=root / "state")
    write_batches(root / "data", rows=3000, days=3, start=date(2026, 11, 1), seed=1)
    trained = {name: train_quickly(settings, root / "data", candidate=name, seed=1) for name in names}
    metric = settings.training.primary_metric
    promoted = select_best([run.best for run in trained.values()], metric).name
    candidates = []
    for name, run in trained.items():
        version = register_trained(settings, run).version
        model = mlflow.sklearn.load_model(f"models:/{settings.mlflow.registered_model}/{version}")
        joblib.dump(model, root / f"{name}.pkl")
        candidates.append(
            Candidate(name, int(version), root / f"{name}.pkl", run.best.metrics[metric], name == promoted)
        )
    client = registry.connect(settings)
    champion = next(c for c in candidates if c.promoted)
    client.set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(champion.version))
    store = KeyStore(settings.key_store)
    keys = [store.create(f"client-{i}")[1] for i in range(clients)]
    columns = list(model.feature_names_in_)
    frame = generate_day(date(2026, 11, 2), max(batch_rows, 1), seed=3)[columns]
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return Setup(root, settings, candidates, keys, rows[0], rows[:batch_rows])


# The media types of /predict_batch bodies (services.columnar), with the in-process reading of each.
BATCH_FORMATS = {
    "JSON": "application/json",
    "Arrow IPC stream": "application/vnd.apache.arrow.stream",
    "Parquet": "application/vnd.apache.parquet",
}
LOAD_SHARES = (0.25, 0.50, 0.75)  # of the measured capacity, for the open loop
WARMUP_SECONDS = 1.0  # of each open-loop window, not recorded


def batch_body(rows: list[dict], media_type: str) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    if media_type == "application/json":
        return json.dumps({"rows": rows}).encode()
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    if media_type == "application/vnd.apache.parquet":
        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def measure_batch(setup: Setup, url: str, repeat: int) -> dict[str, dict[str, float]]:
    """Seconds per ``/predict_batch`` call of the whole batch, in each format (answered in the same format),
    against in-process ``predict_proba`` on the same rows (a DataFrame built from them, as a caller would)."""
    import joblib
    import pandas as pd

    timings: dict[str, dict[str, float]] = {}
    # In-process first, while the service is idle: after its batches it expands their journal records into rows.
    model = joblib.load(setup.model_path)
    inprocess = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        model.predict_proba(pd.DataFrame.from_records(setup.batch, columns=list(model.feature_names_in_)))
        if attempt:
            inprocess.append(time.perf_counter() - started)
    with httpx.Client(timeout=120, headers={"X-API-Key": setup.keys[0]}) as client:
        for label, media_type in BATCH_FORMATS.items():
            body = batch_body(setup.batch, media_type)
            headers = {"content-type": media_type, "accept": media_type}
            served = []
            for attempt in range(repeat + 1):  # the first call is a warm-up
                started = time.perf_counter()
                response = client.post(f"{url}/predict_batch", content=body, headers=headers)
                response.raise_for_status()
                if attempt:
                    served.append(time.perf_counter() - started)
            timings[label] = {"bytes": len(body), "served_s": statistics.median(served)}
    timings["in-process"] = {"bytes": 0, "served_s": statistics.median(inprocess)}
    return timings


@dataclass
class FixedLoad:
    """One open-loop window, with what the server spent per request: CPU, and time waiting for a core."""

    result: OpenLoopResult
    server_cpu_s: float
    run_queue_s: float
    load_average: float
    logged_ms: list[float]  # sorted: the service's own latency of each recorded request, from its access log

    def logged_quantile(self, q: float) -> float:
        return self.logged_ms[min(int(q * len(self.logged_ms)), len(self.logged_ms) - 1)] if self.logged_ms else nan


# How long the access log's writer thread may take to write a window's last lines (it wakes every 50 ms).
ACCESS_LOG_SETTLE_S = 0.5


def logged_latencies(access_log: Path, offset: int, since: datetime, path: str) -> list[float]:
    """The latency the service logged for each request to ``path`` answered since ``since``, in lines written
    after ``offset``: what the service's own stack measured, without the time before a worker's loop took the
    request or the client's side."""
    with access_log.open("rb") as log:
        log.seek(offset)
        lines = log.read().splitlines()
    logged = []
    for line in lines:
        entry = json.loads(line)
        if entry["path"] == path and datetime.fromisoformat(entry["ts"]) >= since:
            logged.append(float(entry["ms"]))
    return sorted(logged)


def fixed_load(
    url: str,
    body: bytes,
    headers: list[dict[str, str]],
    rate: float,
    seconds: float,
    server: subprocess.Popen,
    access_log: Path,
) -> FixedLoad:
    load_average = os.getloadavg()[0]
    offset = access_log.stat().st_size if access_log.exists() else 0
    recorded_from = datetime.now(UTC) + timedelta(seconds=WARMUP_SECONDS)
    cpu, waited = server_cpu_seconds(server), server_run_queue_seconds(server)
    result = uvloop.run(open_loop(url, body, headers, rate=rate, seconds=seconds, warmup_seconds=WARMUP_SECONDS))
    cpu, waited = server_cpu_seconds(server) - cpu, server_run_queue_seconds(server) - waited
    time.sleep(ACCESS_LOG_SETTLE_S)
    logged = logged_latencies(access_log, offset, recorded_from, urlsplit(url).path)
    return FixedLoad(result, cpu, waited, load_average, logged)


@dataclass
class ProjectRun:
    """The project service on one candidate: closed-loop loads, the open loop at shares of capacity, batches."""

    open_loop: list[FixedLoad] = field(default_factory=list)
    batch: dict[str, dict[str, float]] = field(default_factory=dict)


def run_peer(peer: Peer, setup: Setup, args: argparse.Namespace) -> tuple[dict[int, Load], ProjectRun | None, float]:
    started = time.perf_counter()
    process, url = peer.start(setup, args.workers)
    startup = time.perf_counter() - started
    project = ProjectRun() if peer.label == PROJECT else None
    try:
        body = json.dumps(peer.body(setup.row)).encode()
        headers = peer.headers(setup)
        results = {n: load(url + peer.path, body, headers, args.seconds, n, process) for n in args.connections}
        if project is not None:
            capacity = max(r.rps for r in results.values())
            for share in LOAD_SHARES:
                print(f"[serving]   open loop at {share:.0%} of {capacity:,.0f} req/s", file=sys.stderr, flush=True)
                project.open_loop.append(
                    fixed_load(
                        url + peer.path,
                        body,
                        headers,
                        share * capacity,
                        args.seconds,
                        process,
                        setup.settings.access_log_file,
                    )  # fmt: skip
                )
            if setup.batch:
                project.batch = measure_batch(setup, url, args.batch_repeat)
    finally:
        stop_group(process, signal.SIGTERM)
    return results, project, startup


def _ms_per_request(r: Load, cpu: float) -> float:
    return 1000 * cpu / max(r.requests, 1)


def report(
    setup: Setup,
    results: dict[str, dict[str, dict[int, Load]]],
    projects: dict[str, ProjectRun],
    startups: dict[str, float],
    args: argparse.Namespace,
) -> str:
    n = max(args.connections)
    lines = [
        f"### Per candidate type: the project service against the best peer, {n} connections, "
        f"{args.workers} workers per server, {args.seconds:g} s windows",
        "",
        "| candidate | holdout " + setup.settings.training.primary_metric + " | scored by (project) | best peer "
        "| best peer req/s | project req/s | vs best peer | project server CPU ms/req | CPU vs LR's |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    baseline_cpu = None
    for candidate in setup.candidates:
        runs = results.get(candidate.name, {})
        if PROJECT not in runs:
            continue
        own = runs[PROJECT][n]
        cpu = _ms_per_request(own, own.server_cpu_s)
        if candidate.name == "logistic_regression":
            baseline_cpu = cpu
        peers = {label: by_n[n].rps for label, by_n in runs.items() if label != PROJECT and label not in FLOORS}
        best = max(peers, key=peers.__getitem__) if peers else None
        ratio = f"{own.rps / peers[best]:.2f}x" if best else "–"
        cpu_ratio = f"{cpu / baseline_cpu:.2f}x" if baseline_cpu else "–"
        name = f"{candidate.name} (promoted)" if candidate.promoted else candidate.name
        lines.append(
            f"| {name} | {candidate.score:.3f} | {candidate.runtime} | {best or '–'} "
            f"| {peers.get(best, 0):,.0f} | {own.rps:,.0f} | {ratio} | {cpu:.2f} | {cpu_ratio} |"
        )
    lines += [
        "",
        "### Every server, closed loop",
        "",
        "| candidate | connections | server | req/s | p50 ms | p99 ms | errors | server CPU ms/req | client CPU ms/req "
        "| load avg | req/s vs best peer |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for candidate_name, runs in results.items():
        for conns in args.connections:
            peers = [label for label in runs if label != PROJECT and label not in FLOORS]
            best = max((runs[p][conns].rps for p in peers), default=0.0)
            for label, by_connections in runs.items():
                r = by_connections[conns]
                ratio = f"{r.rps / best:.2f}x" if best and label not in FLOORS else "–"
                lines.append(
                    f"| {candidate_name} | {conns} | {label} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
                    f"| {r.errors} | {_ms_per_request(r, r.server_cpu_s):.2f} | {_ms_per_request(r, r.client_cpu_s):.2f} "
                    f"| {r.load_average:.1f} | {ratio} |"
                )
    lines += ["", "Server start-up to first answer, s: " + ", ".join(f"{k} {v:.1f}" for k, v in startups.items())]
    lines += [
        "",
        f"### Open loop: {PROJECT}, requests on a fixed schedule, latency from the scheduled send time",
        "",
        "| candidate | share of capacity | rate req/s | answered req/s | p50 ms | p99 ms | p99.9 ms | errors "
        "| access log p99 ms | access log p99.9 ms | generator lag p99 ms | generator CPU ms/req "
        "| server CPU ms/req | server waiting for a core ms/req | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for candidate_name, project in projects.items():
        for share, fixed in zip(LOAD_SHARES, project.open_loop, strict=False):
            r, sent = fixed.result, max(fixed.result.sent + fixed.result.warmup, 1)  # CPU was measured over both
            lines.append(
                f"| {candidate_name} | {share:.0%} | {r.rate:,.0f} | {r.achieved_rps:,.0f} | {r.quantile(0.5):.1f} "
                f"| {r.quantile(0.99):.1f} | {r.quantile(0.999):.1f} | {r.errors} | {fixed.logged_quantile(0.99):.1f} "
                f"| {fixed.logged_quantile(0.999):.1f} | {r.quantile(0.99, r.lag_ms):.1f} "
                f"| {r.client_cpu_ms:.2f} | {1000 * fixed.server_cpu_s / sent:.2f} | {1000 * fixed.run_queue_s / sent:.2f} "
                f"| {fixed.load_average:.1f} |"
            )
    batches = {name: p.batch for name, p in projects.items() if p.batch}
    if batches:
        lines += [
            "",
            f"### Batch: `/predict_batch` with {len(setup.batch):,} rows, answered in the body's format, median of "
            f"{args.batch_repeat} calls, against in-process `predict_proba` (DataFrame from the same rows)",
            "",
            "| candidate | body | MB | s per batch | rows/s | vs in-process |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for candidate_name, batch in batches.items():
            inprocess = batch["in-process"]["served_s"]
            for label, timing in batch.items():
                rows_s = len(setup.batch) / timing["served_s"]
                lines.append(
                    f"| {candidate_name} | {label} | {timing['bytes'] / 1e6:.2f} | {timing['served_s']:.3f} "
                    f"| {rows_s:,.0f} | {inprocess / timing['served_s']:.2f}x |"
                )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per server and load")
    parser.add_argument("--connections", type=int, nargs="+", default=[32], help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of every server")
    parser.add_argument("--candidates", nargs="+", default=list(get_args(CandidateName)), help="candidate types")
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
    info = machine_info(
        ["bentoml", "scikit-learn", "onnxruntime", "mlflow", "uvicorn", "gunicorn", "uvloop", "httptools"]
    )
    info["command"] = "benchmarks/serving.py " + " ".join(sys.argv[1:] if argv is None else argv)
    info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    peers = [p for p in PEERS if not args.servers or any(w in p.label for w in args.servers)]
    results: dict[str, dict[str, dict[int, Load]]] = {}
    projects: dict[str, ProjectRun] = {}
    startups: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        setup = prepare(Path(tmp), args.batch_rows, max(args.connections), args.candidates)
        setup.service_env = dict(item.split("=", 1) for item in args.service_env)
        for index, candidate in enumerate(setup.candidates):
            setup.current = candidate
            for peer in peers:
                if peer.label in FLOORS and index:
                    continue  # the floors serve no model: measured once
                print(f"[serving] {candidate.name}: {peer.label} ...", file=sys.stderr, flush=True)
                by_n, project, startups[peer.label] = run_peer(peer, setup, args)
                results.setdefault(candidate.name, {})[peer.label] = by_n
                if project is not None:
                    projects[candidate.name] = project
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.service_env:
        info["project service settings"] = " ".join(args.service_env)
    info["run"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - began:.0f} s"
    text = report(setup, results, projects, startups, args)
    text += "\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
