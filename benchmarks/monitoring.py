"""Cost of the monitoring check at scale, against plain Evidently over the whole window.

For each requested size the script writes that many logged predictions (30 features: 24 numeric, 6
categorical, some missing; half of the rows from a shifted distribution) into a temporary SQLite prediction
log with the project's own table, then runs, each in a fresh subprocess so that peak RSS is its own:

* the project's check as the monitoring flow runs it, without Prefect: ``sample_window`` (uniform sample
  drawn by the database, ``max_rows`` 50,000) -> ``drift_report`` (PSI on the chosen metrics against the
  training reference sample) -> ``quality_by_group`` (labels arrived in the window, the champion's rows);
* the baseline: ``read_predictions`` + ``feature_frame`` over every row of the window, then
  ``Report([DataDriftPreset()], include_tests=True)`` with default settings (only at ``--baseline-rows``
  sizes: 100k by default; the 1M baseline takes minutes and about 7 GB, most of it holding the whole log).

Writing the log is setup and is reported apart; imports are timed apart from the check. The reference
(20,000 training rows and their ``profile_frame``) is built once and read by each child from parquet/JSON,
as the flow reads them from the model's MLflow run.

Run from the project root:

    .venv/bin/python benchmarks/monitoring.py --rows 100000 1000000
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import mlops_core  # noqa: E402,F401  (library defaults and telemetry switches before the libraries load)
from benchmarks.machine import machine_info  # noqa: E402

# isort: split
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

DEFAULT_OUTPUT = BENCH_DIR / "results" / "monitoring.md"
README = BENCH_DIR / "README.md"
README_BEGIN = "<!-- monitoring-benchmark:begin -->"
README_END = "<!-- monitoring-benchmark:end -->"
MODEL = "bench"
TARGET = "target"
NUMERIC = 24
CATEGORICAL = 6
REFERENCE_ROWS = 20_000
CARDINALITIES = (3, 5, 8, 12, 20, 40)
SHIFTED_NUMERIC = range(0, 10)  # columns whose distribution moves in the shifted half of the window
SHIFTED_CATEGORICAL = (0, 1)
LABELLED_SHARE = 0.3  # rows whose ground truth has arrived
TARGET_S = 30.0
TARGET_RSS_MB = 1024.0
RESULT_PREFIX = "BENCH-RESULT "


def now() -> float:
    return time.perf_counter()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def numeric_names() -> list[str]:
    return [f"num_{i:02d}" for i in range(NUMERIC)]


def categorical_names() -> list[str]:
    return [f"cat_{j}" for j in range(CATEGORICAL)]


# --- synthetic problem ------------------------------------------------------------------------------------


def generate(rng: Any, rows: int, shifted: bool) -> tuple[dict[str, Any], Any, Any]:
    """Feature columns (numpy arrays, NaN / None for missing), the positive-class probability and the label."""
    import numpy as np

    columns: dict[str, Any] = {}
    standardized = []
    for i, name in enumerate(numeric_names()):
        kind = i % 6
        if kind == 0:
            values, scale = rng.normal(10 * i, 1 + i, rows), 1 + i
        elif kind == 1:
            values, scale = rng.lognormal(1.0, 0.6, rows), 2.0
        elif kind == 2:
            values, scale = rng.uniform(-5, 5, rows), 2.9
        elif kind == 3:
            values, scale = rng.poisson(4 + i % 5, rows).astype(float), 2.0
        elif kind == 4:
            values, scale = rng.exponential(3.0, rows), 3.0
        else:
            values, scale = np.where(rng.random(rows) < 0.3, rng.normal(-3, 1, rows), rng.normal(2, 1.5, rows)), 2.5
        if shifted and i in SHIFTED_NUMERIC:
            values = values + 0.7 * scale
        standardized.append((values - values.mean()) / (values.std() or 1.0))
        if i % 4 == 0:
            values[rng.random(rows) < 0.03] = np.nan
        columns[name] = values
    effect = np.zeros(rows)
    for j, (name, cardinality) in enumerate(zip(categorical_names(), CARDINALITIES, strict=True)):
        weights = 1.0 / np.arange(1, cardinality + 1)
        if shifted and j in SHIFTED_CATEGORICAL:
            weights = weights[::-1]
        codes = rng.choice(cardinality, size=rows, p=weights / weights.sum())
        values = np.array([f"{name}_v{k}" for k in range(cardinality)], dtype=object)[codes]
        if j == CATEGORICAL - 1:
            values[rng.random(rows) < 0.02] = None
        columns[name] = values
        effect += (codes % 3 - 1) * 0.3 if j < 2 else 0.0
    score = 0.9 * standardized[0] - 0.7 * standardized[3] + 0.5 * standardized[7] + 0.4 * standardized[13] + effect
    probability = 1 / (1 + np.exp(-score))
    # In the shifted half the outcome also depends on something the model does not see: quality drops.
    truth_score = score + (rng.normal(0, 1.5, rows) if shifted else 0.0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-truth_score))).astype(int)
    return columns, probability, label


def build_reference(seed: int, directory: Path) -> dict[str, Any]:
    """The training side: 20,000 rows, their profile and the holdout figures, stored as the flow reads them."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import accuracy_score, roc_auc_score

    from mlops_core.profile import profile_frame

    rng = np.random.default_rng(seed)
    columns, probability, label = generate(rng, REFERENCE_ROWS, shifted=False)
    frame = pd.DataFrame(columns)
    frame[TARGET] = label
    names = numeric_names() + categorical_names()
    started = now()
    profile = profile_frame(frame, feature_columns=names, target=TARGET, data_digest=f"bench-seed-{seed}")
    profile_s = now() - started
    holdout = {
        "roc_auc": float(roc_auc_score(label, probability)),
        "accuracy": float(accuracy_score(label, (probability >= 0.5).astype(int))),
    }
    frame.to_parquet(directory / "reference.parquet", index=False)
    (directory / "profile.json").write_text(profile.model_dump_json())
    (directory / "holdout.json").write_text(json.dumps(holdout))
    return {"profile_s": profile_s, "holdout": holdout}


def write_log(url: str, rows: int, seed: int, start: datetime, chunk: int, log: Any) -> dict[str, Any]:
    """``rows`` logged predictions over one hour from ``start``; the second half from the shifted distribution."""
    import numpy as np

    from mlops_core.prediction_log import engine_for, input_hash, predictions

    rng = np.random.default_rng(seed + rows)
    names = numeric_names() + categorical_names()
    step = timedelta(seconds=3600 / rows)
    engine = engine_for(url)
    started = now()
    try:
        half = rows // 2
        # Chunks never straddle the middle, where the shifted half begins.
        starts = sorted({*range(0, half, chunk), *range(half, rows, chunk)})
        for number, (first, end) in enumerate(zip(starts, [*starts[1:], rows], strict=True), 1):
            count = end - first
            columns, probability, label = generate(rng, count, shifted=first >= half)
            values = []
            for name in names:
                column = columns[name].astype(object)
                if name.startswith("num_"):
                    column[np.isnan(columns[name])] = None  # the service logs JSON null, never NaN
                values.append(column)
            labelled = rng.random(count) < LABELLED_SHARE
            latency = rng.gamma(2.0, 2.0, count)
            batch = []
            for k, row in enumerate(zip(*values, strict=True)):
                features = dict(zip(names, row, strict=True))
                p1 = float(probability[k])
                ts = start + step * (first + k)
                batch.append(
                    {
                        "prediction_id": str(uuid.uuid4()),
                        "ts": ts,
                        "model_name": MODEL,
                        "model_version": 1,
                        "model_semver": "1.0.0",
                        "variant": "champion",
                        "input_hash": input_hash(features),
                        "features": features,
                        "prediction": "1" if p1 >= 0.5 else "0",
                        "confidence": max(p1, 1 - p1),
                        "probabilities": {"0": 1 - p1, "1": p1},
                        "latency_ms": float(latency[k]),
                        "ground_truth": str(label[k]) if labelled[k] else None,
                        "ground_truth_ts": ts + timedelta(minutes=5) if labelled[k] else None,
                    }
                )
            with engine.begin() as connection:
                connection.execute(predictions.insert(), batch)
            del batch, values, columns
            done = first + count
            if done == rows or number % 10 == 0:
                log(f"[{rows:,} rows] written {done:,} ({done / (now() - started):,.0f} rows/s)")
    finally:
        engine.dispose()
    return {"write_s": now() - started}


# --- the children (fresh processes) -----------------------------------------------------------------------


def child_check(args: argparse.Namespace) -> dict[str, Any]:
    """The flow's sample -> drift -> quality steps, timed step by step, in this fresh process."""
    out: dict[str, Any] = {"rss_start_mb": current_rss_mb()}
    t = now()
    import pandas as pd

    import stages.monitoring.window as monitoring
    from mlops_core.prediction_log import engine_for
    from mlops_core.profile import DatasetProfile
    from mlops_core.settings import MonitoringSettings
    from stages.monitoring.drift import drift_report
    from stages.monitoring.quality import champion_quality, labelled_predictions, quality_by_group

    out["import_project_s"] = now() - t
    t = now()
    # drift_report and quality_by_group import these lazily: pay for them here, not in the check.
    import evidently  # noqa: F401
    import evidently.metrics  # noqa: F401
    import sklearn.metrics  # noqa: F401

    out["import_evidently_s"] = now() - t
    out["rss_after_imports_mb"] = current_rss_mb()

    t = now()
    directory = Path(args.ref_dir)
    reference = pd.read_parquet(directory / "reference.parquet")
    profile = DatasetProfile.model_validate_json((directory / "profile.json").read_text())
    holdout = json.loads((directory / "holdout.json").read_text())
    out["reference_load_s"] = now() - t

    # Time the steps inside sample_window by wrapping the module functions it calls (benchmark only).
    spans: dict[str, float] = {}

    def timed(name: str, function: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            started = now()
            try:
                return function(*a, **k)
            finally:
                spans[name] = spans.get(name, 0.0) + now() - started

        return wrapper

    monitoring.count_window = timed("count", monitoring.count_window)
    monitoring._parse = timed("parse", monitoring._parse)
    from evidently import Report

    Report.run = timed("evidently_run", Report.run)

    policy = MonitoringSettings()
    if args.max_rows:
        policy = policy.model_copy(update={"max_rows": args.max_rows})
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    engine = engine_for(args.url)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, t0 = cpu_s(), now()
    sample = monitoring.sample_window(engine, MODEL, start, end, profile, policy.max_rows)
    t1 = now()
    drift = drift_report(reference, sample.features, profile, policy)
    t2 = now()
    labelled = labelled_predictions(engine, MODEL, start, end)
    quality = champion_quality(quality_by_group(labelled, 1, holdout, policy, new_since=start), 1)
    t3 = now()
    out["check_cpu_s"] = cpu_s() - cpu0
    if profiler is not None:
        profiler.disable()
        out["profile"] = profile_text(profiler)
    engine.dispose()
    out.update(
        check_s=t3 - t0,
        sample_s=t1 - t0,
        count_s=spans.get("count", 0.0),
        parse_s=spans.get("parse", 0.0),
        fetch_s=(t1 - t0) - spans.get("count", 0.0) - spans.get("parse", 0.0),
        drift_s=t2 - t1,
        evidently_run_s=spans.get("evidently_run", 0.0),
        quality_s=t3 - t2,
        rows_in_window=sample.rows_in_window,
        sampled_rows=sample.rows,
        malformed=sample.malformed,
        drift_share=drift.drift_share,
        drifted_columns=len(drift.drifted_columns),
        missing_share=drift.missing_share,
        labelled_rows=quality.labelled_rows if quality else 0,
        roc_auc=quality.current["roc_auc"] if quality else None,
        quality_drop=quality.drop if quality else None,
        error_bound=monitoring.sampling_error_bound(sample.rows),
    )
    return out


def child_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """Plain Evidently: every row of the window, the default data-drift preset with its tests."""
    out: dict[str, Any] = {"rss_start_mb": current_rss_mb()}
    t = now()
    import pandas as pd

    from mlops_core.prediction_log import feature_frame, read_predictions

    out["import_project_s"] = now() - t
    t = now()
    from evidently import Report
    from evidently.presets import DataDriftPreset

    out["import_evidently_s"] = now() - t
    out["rss_after_imports_mb"] = current_rss_mb()
    t = now()
    reference = pd.read_parquet(Path(args.ref_dir) / "reference.parquet")
    names = numeric_names() + categorical_names()
    reference = reference[names]
    out["reference_load_s"] = now() - t

    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    cpu0, t0 = cpu_s(), now()
    logged = read_predictions(args.url, since=start, until=end, model_name=MODEL)
    current = feature_frame(logged)[names]
    rows = len(logged)
    del logged
    t1 = now()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current_data=current, reference_data=reference)
    result = snapshot.dict()
    t2 = now()
    out["check_cpu_s"] = cpu_s() - cpu0
    share = None
    for metric in result["metrics"]:
        if metric["config"]["type"].rsplit(":", 1)[-1] == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
    out.update(
        check_s=t2 - t0,
        read_s=t1 - t0,
        evidently_s=t2 - t1,
        rows_in_window=rows,
        drift_share=share,
        tests=len(result.get("tests", [])),
    )
    return out


def profile_text(profiler: Any, limit: int = 25) -> str:
    import io
    import pstats

    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(limit)
    return buffer.getvalue()


def evict_from_page_cache(paths: list[Path]) -> int:
    """Drop these files' pages from the OS page cache (only theirs), so the next read comes from disk."""
    evicted = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            evicted += path.stat().st_size
        finally:
            os.close(fd)
    return evicted


def run_child(kind: str, url: str, ref_dir: Path, window: tuple[datetime, datetime], args: argparse.Namespace) -> dict:
    """Run one measurement in a fresh interpreter; watch its RSS and kill it above the memory limit."""
    import psutil

    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--url",
        url,
        "--ref-dir",
        str(ref_dir),
        "--start",
        window[0].isoformat(),
        "--end",
        window[1].isoformat(),
        "--max-rows",
        str(args.max_rows),
    ]
    if args.profile and kind == "check":
        command.append("--profile")
    load_before = os.getloadavg()[0]
    started = now()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = {"peak_mb": 0.0, "killed": False}

    def watch() -> None:
        try:
            handle = psutil.Process(process.pid)
            while process.poll() is None:
                rss = handle.memory_info().rss / 1024**2
                watched["peak_mb"] = max(watched["peak_mb"], rss)
                if rss > args.memory_limit_mb:
                    watched["killed"] = True
                    process.kill()
                    return
                time.sleep(0.1)
        except psutil.NoSuchProcess:
            return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stdout, stderr = process.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return {"error": f"timed out after {args.timeout} s"}
    watcher.join()
    process_s = now() - started
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line.removeprefix(RESULT_PREFIX))
            result.update(
                process_s=process_s,
                sampled_peak_mb=watched["peak_mb"],
                load_before=load_before,
                load_after=os.getloadavg()[0],
            )
            return result
    reason = f"killed above {args.memory_limit_mb:.0f} MB RSS" if watched["killed"] else f"exit {process.returncode}"
    return {"error": f"{reason}: {stderr.strip()[-2000:]}"}


def child_main(args: argparse.Namespace) -> int:
    result = child_check(args) if args.child == "check" else child_baseline(args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# --- report ------------------------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".1f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def best(runs: list[dict], cache: str = "warm") -> dict | None:
    """The fastest successful run with the log in the page cache (or, with ``cache="cold"``, evicted from it)."""
    good = [r for r in runs if "error" not in r and r.get("cache", "warm") == cache]
    return min(good, key=lambda r: r["check_s"]) if good else None


def render(results: list[dict], env: dict[str, str], setup: dict[str, str], command: str) -> str:
    lines = [
        "# Monitoring check at scale",
        "",
        f"Command: `{command}`  ",
        f"Finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Requirement: the check over 1M logged rows x 30 features "
        f"in at most {TARGET_S:.0f} s and {TARGET_RSS_MB:.0f} MB peak RSS.",
        "",
        main_table(results),
        "",
        "*check s*: `sample_window` -> `drift_report` -> `quality_by_group` in a fresh process, imports "
        "and reading the reference excluded; the fastest run with the log file in the OS page cache, and its CPU "
        "time (user + system; steadier than wall time on a loaded machine). *cold-cache check s*: the run after "
        "the log file's pages were evicted from the page cache (`posix_fadvise(DONTNEED)`), so the database scan "
        "reads from disk. *check peak RSS*: the largest `ru_maxrss` of those processes (imports included). "
        "*baseline*: `read_predictions` + `feature_frame` over every row of the window, then "
        "`Report([DataDriftPreset()], include_tests=True)` + `snapshot.dict()`, also in a fresh process, log in "
        "the page cache. *ratio*: project / baseline. *DKW bound*: largest gap between the sample's and the "
        "window's empirical CDF at 95 % confidence (`sampling_error_bound`). *imports s*: project modules + "
        "evidently + scikit-learn metrics in the check's process, not counted in *check s*. *within 30 s / 1 GB*: "
        "every check run of the size, cold or warm, under both limits.",
        "",
        "## Where the check's time goes",
        "",
        "| rows | run | page cache | count s | SQL sample + fetch s | parse s | drift_report s | of which Report.run s | quality s "
        "| check s | check CPU s | imports s | process s | RSS after imports MB | peak RSS MB | load avg before/after |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        for number, run in enumerate(result["check"], 1):
            if "error" in run:
                lines.append(f"| {result['rows']:,} | {number} | {run.get('cache', '')} | {run['error'][:200]} |")
                continue
            lines.append(
                f"| {result['rows']:,} | {number} | {run['cache']} | {run['count_s']:.2f} | {run['fetch_s']:.2f} | {run['parse_s']:.2f} "
                f"| {run['drift_s']:.2f} | {run['evidently_run_s']:.2f} | {run['quality_s']:.3f} | {run['check_s']:.2f} "
                f"| {run['check_cpu_s']:.2f} | {run['import_project_s'] + run['import_evidently_s']:.2f} "
                f"| {run['process_s']:.1f} | {run['rss_after_imports_mb']:.0f} | {run['peak_rss_mb']:.0f} "
                f"| {run['load_before']:.1f} / {run['load_after']:.1f} |"
            )
    lines += [
        "",
        "## Baseline (plain Evidently over the whole window)",
        "",
        "| rows | read + feature_frame s | Report.run + dict s | total s | CPU s | imports s | RSS after imports MB "
        "| peak RSS MB | tests | load avg before/after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        run = result.get("baseline")
        if run is None:
            continue
        if "error" in run:
            lines.append(f"| {result['rows']:,} | {run['error'][:200]} |")
            continue
        lines.append(
            f"| {result['rows']:,} | {run['read_s']:.1f} | {run['evidently_s']:.1f} | {run['check_s']:.1f} "
            f"| {run['check_cpu_s']:.1f} | {run['import_project_s'] + run['import_evidently_s']:.1f} "
            f"| {run['rss_after_imports_mb']:.0f} | {run['peak_rss_mb']:.0f} | {run['tests']} "
            f"| {run['load_before']:.1f} / {run['load_after']:.1f} |"
        )
    lines += [
        "",
        "## Results of the check (sanity)",
        "",
        "| rows | rows in window | sampled | malformed | drift share (project, PSI) | drifted columns "
        "| drift share (baseline preset) | labelled rows | ROC AUC | drop vs holdout |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        run = best(result["check"]) or best(result["check"], "cold")
        if run is None:
            continue
        base = result.get("baseline") or {}
        lines.append(
            f"| {result['rows']:,} | {run['rows_in_window']:,} | {run['sampled_rows']:,} | {run['malformed']} "
            f"| {run['drift_share']:.2f} | {run['drifted_columns']} | {fmt(base.get('drift_share'), '.2f')} "
            f"| {run['labelled_rows']:,} | {fmt(run['roc_auc'], '.3f')} | {fmt(run['quality_drop'], '.3f')} |"
        )
    lines += [
        "",
        "## Setup (not timed in the check)",
        "",
        "| rows | write s | rows/s | log file MB |",
        "|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result['rows']:,} | {result['write_s']:.1f} | {result['rows'] / result['write_s']:,.0f} "
            f"| {result['db_mb']:,.0f} |"
        )
    lines += ["", *(f"- {key}: {value}" for key, value in setup.items())]
    profiles = [(r["rows"], run["profile"]) for r in results for run in r["check"] if run.get("profile")]
    if profiles:
        lines += ["", "## cProfile of the check (cumulative)", ""]
        for rows, text in profiles:
            lines += [f"### {rows:,} rows", "", "```", text.strip(), "```", ""]
    lines += ["", "## Machine", "", *(f"- {key}: {value}" for key, value in env.items())]
    return "\n".join(lines) + "\n"


def main_table(results: list[dict]) -> str:
    lines = [
        "| rows | check s | check CPU s | cold-cache check s | check peak RSS MB | baseline s | baseline RSS MB "
        "| ratio s | ratio RSS | sampled rows | DKW bound | imports s | within 30 s / 1 GB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        run = best(result["check"]) or best(result["check"], "cold")
        cold = best(result["check"], "cold")
        base = result.get("baseline")
        base = base if base and "error" not in base else None
        if run is None:
            lines.append(f"| {result['rows']:,} | failed | | | | | | | | | | | |")
            continue
        good = [r for r in result["check"] if "error" not in r]
        slowest = max(r["check_s"] for r in good)
        peak = max(r["peak_rss_mb"] for r in good)
        ratio_s = f"{run['check_s'] / base['check_s']:.2f}" if base else "–"
        ratio_rss = f"{run['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if base else "–"
        ok = slowest <= TARGET_S and peak <= TARGET_RSS_MB and len(good) == len(result["check"])
        lines.append(
            f"| {result['rows']:,} | {run['check_s']:.1f} | {run['check_cpu_s']:.1f} | {fmt(cold and cold['check_s'])} "
            f"| {peak:.0f} | {fmt(base and base['check_s'])} | {fmt(base and base['peak_rss_mb'], '.0f')} "
            f"| {ratio_s} | {ratio_rss} | {run['sampled_rows']:,} | {run['error_bound']:.4f} "
            f"| {run['import_project_s'] + run['import_evidently_s']:.1f} | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines)


def update_readme(table: str, command: str) -> None:
    """Replace the table between the markers of the README's monitoring section (the rest is hand-written)."""
    text = README.read_text() if README.exists() else ""
    if README_BEGIN not in text or README_END not in text:
        return
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    stamp = f"Latest run ({datetime.now(UTC):%Y-%m-%d}, `{command}`):"
    README.write_text(f"{head}{README_BEGIN}\n{stamp}\n\n{table}\n{README_END}{tail}")


# --- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="logged rows per size")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        nargs="*",
        default=[100_000],
        help="sizes at which plain Evidently also runs (default 100000; 1000000 takes minutes and about 7 GB)",
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="check runs per size with the log in the page cache (default 2)"
    )
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=1,
        help="check runs per size after evicting the log file from the page cache, run first (default 1)",
    )
    parser.add_argument("--max-rows", type=int, default=50_000, help="the check's sample size (default 50000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per insert transaction (default 20000)")
    parser.add_argument(
        "--memory-limit-mb",
        type=float,
        default=10_000,
        help="kill a child above this RSS (default 10000; the 1M baseline peaks near 6.7 GB)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per child")
    parser.add_argument("--profile", action="store_true", help="cProfile the check and add the top entries")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"markdown report (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--no-readme", action="store_true", help="do not refresh the table in benchmarks/README.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary prediction logs (paths are printed)")
    # Internal: one measurement in a fresh process.
    parser.add_argument("--child", choices=["check", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ref-dir", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    command = " ".join([".venv/bin/python", "benchmarks/monitoring.py", *(argv if argv is not None else sys.argv[1:])])

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    env = machine_info(["evidently", "pandas", "numpy", "SQLAlchemy", "scikit-learn"])
    env["load average at start (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    root = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    setup: dict[str, str] = {}
    results: list[dict] = []
    try:
        log(f"building the {REFERENCE_ROWS:,}-row reference and its profile in {root}")
        t = now()
        reference = build_reference(args.seed, root)
        setup["reference (20k rows) generate + profile_frame + save"] = (
            f"{now() - t:.1f} s (profile_frame {reference['profile_s']:.2f} s); holdout ROC AUC "
            f"{reference['holdout']['roc_auc']:.3f}"
        )
        for rows in args.rows:
            path = root / f"predictions-{rows}.db"
            url = f"sqlite:///{path}"
            start = datetime.now(UTC) - timedelta(hours=1)
            log(f"[{rows:,} rows] writing the prediction log {path}")
            written = write_log(url, rows, args.seed, start, args.chunk, log)
            db_mb = sum(p.stat().st_size for p in root.glob(f"predictions-{rows}.db*")) / 1024**2
            window = (start - timedelta(seconds=1), start + timedelta(hours=1, seconds=1))
            result: dict[str, Any] = {"rows": rows, "db_mb": db_mb, **written, "check": []}
            plan = ["cold"] * args.cold_runs + ["warm"] * args.repeat
            for number, cache in enumerate(plan, 1):
                if cache == "cold":
                    evict_from_page_cache(sorted(root.glob(f"predictions-{rows}.db*")))
                log(f"[{rows:,} rows] check run {number}/{len(plan)} ({cache} page cache, fresh process)")
                run = run_child("check", url, root, window, args)
                run["cache"] = cache
                result["check"].append(run)
                log(f"[{rows:,} rows]   {summary(run)}")
            if rows in args.baseline_rows:
                log(f"[{rows:,} rows] baseline: plain Evidently DataDriftPreset over all rows (fresh process)")
                result["baseline"] = run_child("baseline", url, root, window, args)
                log(f"[{rows:,} rows]   {summary(result['baseline'])}")
            results.append(result)
            if not args.keep:
                for leftover in root.glob(f"predictions-{rows}.db*"):
                    leftover.unlink()
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    env["load average at end (1/5/15 min)"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())

    report = render(results, env, setup, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    if not args.no_readme:
        update_readme(main_table(results), command)
    print()
    print(report)
    print(f"written to {args.output}")
    return 0


def summary(run: dict) -> str:
    if "error" in run:
        return f"FAILED: {run['error'][:500]}"
    return (
        f"{run['check_s']:.2f} s (CPU {run['check_cpu_s']:.2f} s), peak RSS {run['peak_rss_mb']:.0f} MB, "
        f"imports {run['import_project_s'] + run['import_evidently_s']:.1f} s, "
        f"rows {run['rows_in_window']:,}, drift share {run['drift_share']}"
    )


if __name__ == "__main__":
    sys.exit(main())
