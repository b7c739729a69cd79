"""The point-in-time join alone: Feast's DuckDB offline store against the project's as-of store, same rows.

    .venv/bin/python benchmarks/point_in_time_join.py --rows 1000000 [--days 5] [--stores duckdb asof]

For each size: generate daily batches with the project's generator and write the window's feature rows to the
offline store once (as the training flow does). Then, for each offline store, a fresh process loads the window
(``load_window``) and builds the training set (``stages.features.training_sets.training_set``: label frame,
Feast's ``get_historical_features``, ``to_df``, the reordering and typing of the kept rows). Each process
reports the join's seconds and its peak RSS; a process that passes ``--rss-limit-gb`` stops itself (Feast's
DuckDB store pairs each label row with every earlier row of its entity: at 10M rows it outgrows 24 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

from benchmarks import training_flow  # noqa: E402  (sets a private PREFECT_HOME before Prefect loads)
from benchmarks.machine import machine_info  # noqa: E402
from mlops_core.settings import ASOF_OFFLINE_STORE  # noqa: E402

DEFAULT_OUTPUT = BENCH_DIR / "results" / "point_in_time_join.md"
STORES = {"duckdb": "duckdb", "asof": ASOF_OFFLINE_STORE}
RSS_LIMIT_EXIT = 3


def rss_gb() -> float:
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024**2


def guard_rss(limit_gb: float) -> None:
    """Stop this process when its RSS passes the limit: the machine is shared."""

    def watch() -> None:
        while True:
            if rss_gb() > limit_gb:
                print(json.dumps({"stopped_at_rss_gb": rss_gb()}), flush=True)
                os._exit(RSS_LIMIT_EXIT)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()


def settings_for(root: Path, store: str):
    os.environ["MLOPS_FEATURES__OFFLINE_STORE"] = json.dumps({"type": STORES[store]})
    return training_flow.configure(root, root / "data")


def prepare(root: Path) -> dict:
    """Load the window and write its feature rows offline (shared by every store's run)."""
    from mlops_core.features import FeatureRepository
    from stages.data.loading import load_window
    from stages.features.training_sets import write_offline

    settings = settings_for(root, "asof")
    data = load_window(settings.data_source, target=settings.data.target, timestamp=settings.data.timestamp)
    repository = FeatureRepository(settings)
    repository.apply()
    started = time.perf_counter()
    files = write_offline(repository, data.frame, settings.data.timestamp)
    return {"write_offline_s": time.perf_counter() - started, "files": len(files)}


def join(root: Path, store: str) -> dict:
    from mlops_core.features import FeatureRepository
    from stages.data.loading import load_window
    from stages.features.training_sets import training_set

    settings = settings_for(root, store)
    repository = FeatureRepository(settings)
    repository.store  # noqa: B018  (Feast's import and store set-up are not the join)
    started = time.perf_counter()
    data = load_window(settings.data_source, target=settings.data.target, timestamp=settings.data.timestamp)
    loaded = time.perf_counter()
    rss_loaded = rss_gb()
    joined = training_set(
        repository,
        data.frame,
        entity_id=settings.data.entity_id,
        timestamp=settings.data.timestamp,
        target=data.target,
    )
    return {
        "load_s": loaded - started,
        "join_s": time.perf_counter() - loaded,
        "rss_after_load_gb": rss_loaded,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "rows": len(joined.frame),
        "rows_without_features": joined.rows_without_features,
    }


def in_subprocess(step: str, root: Path, store: str, limit_gb: float) -> dict:
    command = [sys.executable, __file__, "--worker", step, "--root", str(root), "--store", store]
    command += ["--rss-limit-gb", str(limit_gb)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    if done.returncode not in (0, RSS_LIMIT_EXIT):
        raise RuntimeError(f"{step} with {store} failed:\n{done.stderr[-3000:]}")
    return json.loads(last)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--stores", nargs="+", choices=sorted(STORES), default=["duckdb", "asof"])
    parser.add_argument("--rss-limit-gb", type=float, default=14.0, help="a join process above this stops itself")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", choices=["prepare", "join"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", choices=sorted(STORES), default="asof", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        guard_rss(args.rss_limit_gb)
        result = prepare(args.root) if args.worker == "prepare" else join(args.root, args.store)
        print(json.dumps(result), flush=True)
        shutil.rmtree(training_flow._PREFECT_HOME, ignore_errors=True)
        return 0

    from stages.data.generator import write_batches

    lines = [
        "# Point-in-time join: Feast's DuckDB offline store vs the as-of store",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine_info(["feast", "duckdb", "ibis-framework"]).items()),
        "",
        "| rows | store | load s | join s | join vs duckdb | RSS after load GB | peak RSS GB | rows kept "
        "| rows without features | load avg before / after |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rows in args.rows:
        root = Path(tempfile.mkdtemp(prefix=f"bench-pit-join-{rows}-"))
        try:
            write_batches(root / "data", rows=rows, days=args.days, start=training_flow.START_DAY, seed=0)
            prepared = in_subprocess("prepare", root, "asof", args.rss_limit_gb)
            print(f"[{rows:,} rows] offline rows written in {prepared['write_offline_s']:.1f} s", flush=True)
            baseline = None
            for store in args.stores:
                load_before = os.getloadavg()[0]
                result = in_subprocess("join", root, store, args.rss_limit_gb)
                load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
                print(f"[{rows:,} rows] {store}: {result}", flush=True)
                if "stopped_at_rss_gb" in result:
                    lines.append(
                        f"| {rows:,} | {store} | | stopped | | | {result['stopped_at_rss_gb']:.2f} (limit) | | | {load} |"
                    )
                    continue
                if store == "duckdb":
                    baseline = result["join_s"]
                ratio = f"{result['join_s'] / baseline:.3f}x" if baseline else "n/a"
                lines.append(
                    f"| {rows:,} | {store} | {result['load_s']:.2f} | {result['join_s']:.2f} | {ratio} "
                    f"| {result['rss_after_load_gb']:.2f} | {result['peak_rss_gb']:.2f} | {result['rows']:,} "
                    f"| {result['rows_without_features']:,} | {load} |"
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    lines += [
        "",
        "*join s*: `training_set` after the window is loaded (label frame, Feast's `get_historical_features`,",
        "`to_df`, the kept rows reordered and typed). *peak RSS*: the whole process (imports, the window, the join).",
    ]
    shutil.rmtree(training_flow._PREFECT_HOME, ignore_errors=True)
    report = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
