"""Memory and CPU of one service pod under the serving benchmark's load: the figures behind the manifests' resources.

    .venv/bin/python deploy/k8s/measure_resources.py [--seconds 20] [--connections 32] [--workers 2]

For each model family the champion can be (logistic regression, hist gradient boosting), a version is
registered in a temporary registry and ``bentoml serve`` is started pinned to it, as a colour runs, with
``--workers`` workers. After every worker is ready the process tree is sampled at rest, then during the load of
``benchmarks/serving.py`` (``--connections`` clients sending single-row ``/predict`` requests back to back, on
127.0.0.1) every 0.25 s: RSS per process (what ``ps`` shows; pages shared between workers count in each) and
PSS summed over the tree (shared pages split between the processes sharing them: the sum is close to what the
pod's memory cgroup is charged for anonymous and file pages). CPU is the tree's CPU seconds over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import mlops_core  # noqa: E402,F401  (telemetry off)
from benchmarks.serving import load  # noqa: E402
from mlops_core.api_keys import KeyStore  # noqa: E402
from mlops_core.settings import Settings  # noqa: E402
from stages.data.generator import generate_day, write_batches  # noqa: E402
from tests.helpers import register_quickly  # noqa: E402
from tests.service.conftest import service_environment, start_service, stop_group  # noqa: E402

MIB = 1024 * 1024
CANDIDATES = ("logistic_regression", "hist_gradient_boosting")


@dataclass
class Sample:
    worker_rss: list[float]  # MiB, one per worker process
    tree_rss: float  # MiB, every process of the server
    tree_pss: float  # MiB


def sample(leader: psutil.Process, workers: set[int]) -> Sample:
    worker_rss, tree_rss, tree_pss = [], 0.0, 0.0
    for proc in [leader, *leader.children(recursive=True)]:
        try:
            memory = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        tree_rss += memory.rss / MIB
        tree_pss += memory.pss / MIB
        if proc.pid in workers:
            worker_rss.append(memory.rss / MIB)
    return Sample(worker_rss, tree_rss, tree_pss)


def worker_pids(url: str, workers: int) -> set[int]:
    """The worker processes, as they name themselves in /readyz (the service answers from each in turn)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < workers and time.monotonic() < deadline:
        seen.add(httpx.get(f"{url}/readyz", timeout=5).json()["worker"])
    return seen


def measure(candidate: str, root: Path, seconds: float, connections: int, workers: int) -> dict:
    state = root / candidate
    settings = Settings(state_dir=state)
    write_batches(state / "data", rows=20_000, days=4, start=date(2026, 11, 1), seed=3)
    version = register_quickly(settings, state / "data", candidate=candidate).version
    key = KeyStore(settings.keys_url).create("resource measurement", rate_limit=10**9)[1]
    env = service_environment(
        state, MLOPS_SERVICE__MODEL_REF=str(version), MLOPS_SERVICE__WORKERS=str(workers),
        MLOPS_SERVICE__POLL_SECONDS="10",
    )  # fmt: skip
    server = start_service(env, state / "service.log", timeout=240)
    try:
        leader = psutil.Process(server.process.pid)
        pids = worker_pids(server.url, workers)
        rest = sample(leader, pids)
        samples: list[Sample] = []
        done = threading.Event()

        def sampler() -> None:
            while not done.is_set():
                samples.append(sample(leader, pids))
                time.sleep(0.25)

        row = generate_day(date(2026, 11, 9), 1, seed=5).drop(columns=["defaulted", "applicant_id", "application_ts"])
        body = json.dumps(json.loads(row.to_json(orient="records"))[0]).encode()
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        result = asyncio.run(
            load(f"{server.url}/predict", body, [{"X-API-Key": key}], seconds, connections, server.process)
        )
        done.set()
        thread.join()
    finally:
        stop_group(server.process)
    return {
        "model": candidate,
        "workers": len(pids),
        "worker_rss_rest": max(rest.worker_rss),
        "worker_rss_peak": max(max(s.worker_rss) for s in samples),
        "tree_rss_peak": max(s.tree_rss for s in samples),
        "tree_pss_rest": rest.tree_pss,
        "tree_pss_peak": max(s.tree_pss for s in samples),
        "cpu_cores": result.server_cpu_s / result.seconds,
        "rps": result.rps,
        "errors": result.errors,
        "p50_ms": result.p50_ms,
        "load_average": result.load_average,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds of load per model")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (benchmarks/serving.py)")
    parser.add_argument("--workers", type=int, default=2, help="service workers per pod (MLOPS_SERVICE__WORKERS)")
    args = parser.parse_args()
    print(f"{psutil.cpu_count()} cores; {args.workers} workers; {args.connections} connections for {args.seconds:g} s")
    print(
        "| champion | worker RSS at rest MiB | worker RSS peak MiB | pod RSS sum peak MiB | pod PSS at rest MiB "
        "| pod PSS peak MiB | pod CPU cores | req/s | errors | load average |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="mlops-resources-") as tmp:
        for candidate in CANDIDATES:
            m = measure(candidate, Path(tmp), args.seconds, args.connections, args.workers)
            print(
                f"| {m['model']} | {m['worker_rss_rest']:.0f} | {m['worker_rss_peak']:.0f} | {m['tree_rss_peak']:.0f} "
                f"| {m['tree_pss_rest']:.0f} | {m['tree_pss_peak']:.0f} | {m['cpu_cores']:.2f} | {m['rps']:.0f} "
                f"| {m['errors']} | {m['load_average']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
