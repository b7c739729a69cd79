"""The Great Expectations gate on its own at scale: the committed suite over a generated training window.

    .venv/bin/python benchmarks/gx_gate.py [--rows 1000000] [--repeat 2]

For each size: generate daily batches with the project's generator, load them as the training flow does
(``load_window``), then time ``stages.data.validation.validate`` with the committed ``loan_default`` suite
on a private copy of the GX context (the same setup as ``training_flow.py``, whose flow also runs the gate).
Generation and loading are reported apart; the gate's best of ``--repeat`` runs is the figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

from benchmarks import training_flow  # noqa: E402  (sets a private PREFECT_HOME before Prefect loads)
from benchmarks.machine import machine_info  # noqa: E402
from stages.data.generator import write_batches  # noqa: E402
from stages.data.loading import load_window  # noqa: E402
from stages.data.validation import validate  # noqa: E402

DEFAULT_OUTPUT = BENCH_DIR / "results" / "gx_gate.md"


def bench(rows: int, args: argparse.Namespace) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"bench-gx-{rows}-"))
    try:
        started = time.perf_counter()
        write_batches(root / "data", rows=rows, days=args.days, start=training_flow.START_DAY, seed=args.seed)
        generated = time.perf_counter() - started
        settings = training_flow.configure(root, root / "data")
        started = time.perf_counter()
        data = load_window(
            settings.data_source,
            target=settings.data.target,
            entity_id=settings.data.entity_id,
            timestamp=settings.data.timestamp,
        )
        loaded = time.perf_counter() - started
        gate = []
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            outcome = validate(data.frame, settings.validation.context_dir, settings.validation.suite)
            gate.append((time.perf_counter() - started, time.process_time() - cpu))
        wall, cpu = min(gate)
        return {
            "rows": rows,
            "generate_s": generated,
            "load_s": loaded,
            "gate_s": wall,
            "gate_cpu_s": cpu,
            "runs": ", ".join(f"{w:.1f}" for w, _ in gate),
            "result": outcome.summary(),
            "load_average": os.getloadavg()[0],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="window sizes (rows)")
    parser.add_argument("--days", type=int, default=10, help="daily batch files per window")
    parser.add_argument("--repeat", type=int, default=2, help="gate runs per size; the fastest is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"markdown report ({DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    info = machine_info(["great-expectations", "pandas", "numpy"])
    results = [bench(rows, args) for rows in args.rows]
    lines = [
        "### Great Expectations gate alone (committed suite, private copy of the context)",
        "",
        "| rows | gate s | gate CPU s | rows/s | runs s | load s | generate s | load avg | result |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['rows']:,} | {r['gate_s']:.1f} | {r['gate_cpu_s']:.1f} | {r['rows'] / r['gate_s']:,.0f} | {r['runs']} "
        f"| {r['load_s']:.1f} | {r['generate_s']:.1f} | {r['load_average']:.1f} | {r['result']} |"
        for r in results
    ]
    info["peak RSS"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB"
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    shutil.rmtree(training_flow._PREFECT_HOME, ignore_errors=True)
    print(text)
    return text


if __name__ == "__main__":
    main()
