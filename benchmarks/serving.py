"""Serving speed in one run: the Bento service (prediction log on and off) against the seed's Flask app.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--connections 32] [--workers 2]

The seed's app is its own code (Flask, a joblib-pickled model, gunicorn) with one change: the row becomes a
one-row DataFrame with the signature's column names, which the pipeline needs. Both sides serve the same
registered model with the same number of worker processes; the load generator shares the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlops_core  # noqa: E402,F401  (telemetry off)
from mlops_core import registry  # noqa: E402
from mlops_core.api_keys import KeyStore  # noqa: E402
from mlops_core.generator import generate_day  # noqa: E402
from mlops_core.settings import Settings  # noqa: E402
from tests.service.conftest import free_port, service_environment, start_service, stop_group, wait_until  # noqa: E402
from tests.service.training import register_model  # noqa: E402

VENV_BIN = Path(sys.executable).parent

SEED_APP = textwrap.dedent(
    """
    import os
    from datetime import datetime

    import joblib
    import pandas as pd
    from flask import Flask, jsonify, request

    app = Flask(__name__)
    model = joblib.load(os.environ["MODEL_PATH"])
    columns = list(model.feature_names_in_)

    @app.route("/predict", methods=["POST"])
    def predict():
        try:
            data = request.get_json()
            features = pd.DataFrame([data["features"]], columns=columns)
            prediction = model.predict(features)[0]
            confidence = model.predict_proba(features)[0].max()
            return jsonify({"prediction": int(prediction), "confidence": float(confidence),
                            "timestamp": datetime.now().isoformat()})
        except Exception as e:
            return jsonify({"error": str(e)}), 500
    """
)


async def load(url: str, body: dict, headers: dict, seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as client:

        async def worker(deadline: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, json=body)
                if record:
                    latencies.append(time.perf_counter() - started)
                    errors += response.status_code != 200

        await asyncio.gather(*(worker(time.perf_counter() + 2, False) for _ in range(connections)))  # warm-up
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + seconds, True) for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def start_flask(model_path: Path, app_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    (app_dir / "seed_app.py").write_text(SEED_APP)
    port = free_port()
    process = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "seed_app:app",
            "--log-level",
            "warning",
        ],
        cwd=app_dir,
        env={**os.environ, "MODEL_PATH": str(model_path)},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.post(f"{url}/predict", json={}, timeout=2).status_code == 500, 60, "Flask app")
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import joblib
    import mlflow.sklearn

    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(state_dir=root / "state")
        version = register_model(settings, root / "data", seed=1)
        client = registry.connect(settings)
        client.set_registered_model_alias(settings.mlflow.registered_model, registry.CHAMPION, str(version))
        model = mlflow.sklearn.load_model(f"models:/{settings.mlflow.registered_model}/{version}")
        joblib.dump(model, root / "model.pkl")
        key = KeyStore(settings.key_store).create("benchmark")[1]
        frame = generate_day(date(2026, 11, 2), 1, seed=3)[list(model.feature_names_in_)]
        row = {k: (None if v != v else v) for k, v in frame.iloc[0].to_dict().items()}
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}

        results: dict[str, dict[str, float]] = {}
        flask, flask_url = start_flask(root / "model.pkl", root, args.workers)
        try:
            results["flask+gunicorn (seed)"] = asyncio.run(
                load(f"{flask_url}/predict", {"features": list(row.values())}, {}, args.seconds, args.connections)
            )
        finally:
            stop_group(flask)
        for label, logging in (("bento, prediction log on", "true"), ("bento, prediction log off", "false")):
            env = service_environment(
                settings.state_dir,
                MLOPS_SERVICE__WORKERS=str(args.workers),
                MLOPS_SERVICE__PREDICTION_LOG=logging,
                MLOPS_SERVICE__RATE_LIMIT=str(10**9),
                MLOPS_SERVICE__POLL_SECONDS="30",
            )
            server = start_service(env, root / f"bento-{logging}.log")
            try:
                results[label] = asyncio.run(
                    load(f"{server.url}/predict", row, {"X-API-Key": key}, args.seconds, args.connections)
                )
            finally:
                stop_group(server.process, signal.SIGTERM)

    baseline = results["flask+gunicorn (seed)"]
    print(
        f"\n{args.connections} connections, {args.workers} workers, {args.seconds:.0f} s per server, one row per request"
    )
    print(f"{'server':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'req/s vs seed':>15}")
    for label, r in results.items():
        print(
            f"{label:<28}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}"
            f"{r['rps'] / baseline['rps']:>14.2f}x"
        )
    on, off = results["bento, prediction log on"], results["bento, prediction log off"]
    print(f"prediction log cost: {1 - on['rps'] / off['rps']:.0%} of req/s, p50 +{on['p50_ms'] - off['p50_ms']:.1f} ms")


if __name__ == "__main__":
    main()
