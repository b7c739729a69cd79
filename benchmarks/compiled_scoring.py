"""Scoring latency of each candidate type, compiled (linear form or ONNX Runtime) against scikit-learn, in one run.

    .venv/bin/python benchmarks/compiled_scoring.py [--rows 20000] [--repeat 300] [--batch-repeat 30]

Fits every built-in candidate type on generated rows, builds the service's field rules from its signature and
training profile, and compiles it as a worker does when it loads a version (``services.models.runtime_for``:
conversion, then the guard's probe rows). Then times the two paths a served model can take, as the service
calls them on rows checked by ``check_row`` (dicts): the compiled form's ``predict_proba`` against
``pipeline.predict_proba(frame_of(rows, rules))`` and against the whole pipeline's ONNX graph
(``services.onnx_model``, what the tree models were served by before ``services.estimator_onnx``), for one row and for a batch of 1,000 rows; the median of
``--repeat`` (one row) and ``--batch-repeat`` (batch) calls, with one BLAS/OpenMP thread, as each service
worker has. Every figure in a row of the table comes from the same run, so the ratios hold on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, get_args

import pandas as pd
from threadpoolctl import threadpool_limits

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.machine import machine_info  # noqa: E402
from mlops_core.profile import profile_frame  # noqa: E402
from mlops_core.settings import CandidateName  # noqa: E402
from services import onnx_model  # noqa: E402
from services.compiled import NotConvertible  # noqa: E402
from services.inputs import build_rules, check_row, frame_of  # noqa: E402
from services.models import runtime_for  # noqa: E402
from stages.data.generator import generate_day  # noqa: E402
from stages.training.candidates import fit_candidate, split_holdout  # noqa: E402
from stages.training.tracking import model_signature  # noqa: E402

BATCH_ROWS = 1000
DAYS = 10
NOT_FEATURES = ("defaulted", "applicant_id", "application_ts")


def median_seconds(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm-up: first-call allocations and caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def served_rows(rules: list, count: int) -> list[dict[str, Any]]:
    """New generated rows, checked as the service checks a request (missing values included)."""
    frame = generate_day(date(2026, 12, 1), count, seed=9).drop(columns=list(NOT_FEATURES))
    raw = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return [row for row, _, _ in (check_row(row, rules, refuse_out_of_range=False) for row in raw)]


def timings(
    pipeline: Any, compiled: Any, graph: Any, rows: list[dict[str, Any]], rules: list, args: argparse.Namespace
) -> dict:
    """Median seconds per call of each path, on one row and on the whole batch: scikit-learn, the served
    compiled form and the whole pipeline's ONNX graph (where it converts and agrees)."""
    one = rows[:1]
    paths = {"sklearn": lambda rows: pipeline.predict_proba(frame_of(rows, rules)), "compiled": compiled.predict_proba}
    if graph is not None:
        paths["graph"] = graph.predict_proba
    timed = {}
    for path, score in paths.items():
        timed[f"row_{path}"] = median_seconds(lambda score=score: score(one), args.repeat)
        timed[f"batch_{path}"] = median_seconds(lambda score=score: score(rows), args.batch_repeat)
    return timed


def whole_graph(pipeline: Any, rules: list) -> Any:
    try:
        return onnx_model.checked(pipeline, rules)
    except NotConvertible:
        return None


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    start = date(2026, 11, 1)
    frame = pd.concat(
        [generate_day(start + timedelta(days=d), args.rows // DAYS, seed=2) for d in range(DAYS)], ignore_index=True
    )
    features = [c for c in frame.columns if c not in NOT_FEATURES]
    split = split_holdout(
        frame, features=features, target="defaulted", holdout_fraction=0.25, timestamp="application_ts", seed=0
    )
    profile = profile_frame(frame, feature_columns=features, target="defaulted", data_digest="benchmark")
    results = []
    for name in get_args(CandidateName):
        candidate = fit_candidate(name, split, seed=0)
        rules = build_rules(model_signature(candidate, split), profile, headroom=0.5)
        started = time.perf_counter()
        compiled, runtime = runtime_for(candidate.pipeline, rules, "onnx")
        compile_seconds = time.perf_counter() - started
        if compiled is None:
            results.append({"candidate": name, "runtime": runtime})
            continue
        graph = whole_graph(candidate.pipeline, rules)
        timed = timings(candidate.pipeline, compiled, graph, served_rows(rules, BATCH_ROWS), rules, args)
        results.append({"candidate": name, "runtime": runtime, "compile_s": compile_seconds, **timed})
    return results


def report(results: list[dict[str, Any]], args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        "## Compiled scoring vs scikit-learn, in process",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/compiled_scoring.py', *sys.argv[1:]])}`; trained on "
        f"{args.rows:,} generated rows; medians of {args.repeat} one-row and {args.batch_repeat} "
        f"{BATCH_ROWS:,}-row calls; one BLAS/OpenMP thread; load average {load[0]:.1f} before, {load[1]:.1f} after.",
        "",
        "; ".join(f"{k}: {v}" for k, v in machine_info(["scikit-learn", "onnxruntime", "skl2onnx", "onnx"]).items()),
        "",
        "| candidate | served by | compile + guard s | one row: scikit-learn µs | whole-pipeline graph µs "
        f"| served µs | speed-up | {BATCH_ROWS:,} rows: scikit-learn ms | whole-pipeline graph ms | served ms "
        "| speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "row_compiled" not in r:
            lines.append(f"| {r['candidate']} | {r['runtime']} | | | | | | | | | |")
            continue
        graph_row = f"{r['row_graph'] * 1e6:,.0f}" if "row_graph" in r else "–"
        graph_batch = f"{r['batch_graph'] * 1e3:,.1f}" if "batch_graph" in r else "–"
        lines.append(
            f"| {r['candidate']} | {r['runtime']} | {r['compile_s']:.2f} | {r['row_sklearn'] * 1e6:,.0f} "
            f"| {graph_row} | {r['row_compiled'] * 1e6:,.0f} | {r['row_sklearn'] / r['row_compiled']:.0f}x "
            f"| {r['batch_sklearn'] * 1e3:,.1f} | {graph_batch} | {r['batch_compiled'] * 1e3:,.1f} "
            f"| {r['batch_sklearn'] / r['batch_compiled']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="generated training rows")
    parser.add_argument("--repeat", type=int, default=300, help="one-row calls timed per path")
    parser.add_argument("--batch-repeat", type=int, default=30, help=f"{BATCH_ROWS:,}-row calls timed per path")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "compiled_scoring.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    before = os.getloadavg()[0]
    with threadpool_limits(limits=1):
        results = measure(args)
    text = report(results, args, (before, os.getloadavg()[0]))
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0 if all("row_compiled" in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
