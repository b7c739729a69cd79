"""Every benchmark in one command, one results table: ``benchmarks/results/latest.md``.

    .venv/bin/python benchmarks/run_all.py            # about 15 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run, about 3 minutes

Each benchmark runs as its own process (its imports, settings and temporary state stay its own) and writes
its markdown report; this script runs them in turn, bounded by ``--timeout`` each, and joins the reports
under one header: the command, the machine, the load average before and after each part and its duration.
A part that fails is reported with the tail of its output, and the others still run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.machine import machine_info  # noqa: E402

RESULTS = BENCH_DIR / "results"
PARTS = ("serving", "training", "monitoring", "gx")


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each part's script and arguments; ``--quick`` shrinks every size and duration."""
    quick = args.quick
    serving = ["--quick"] if quick else ["--seconds", str(args.serving_seconds)]
    training = ["--rows", *map(str, args.training_rows or ([5_000] if quick else [10_000, 100_000]))]
    training += ["--repeat", "1", "--no-threaded-baseline"] if quick else ["--repeat", "2"]
    monitoring = ["--rows", *map(str, args.monitoring_rows or ([20_000] if quick else [100_000, 1_000_000]))]
    monitoring += ["--baseline-rows", "20000" if quick else "100000", "--repeat", "1", "--no-readme"]
    gx = ["--rows", *map(str, args.gx_rows or ([50_000] if quick else [1_000_000])), "--repeat", "1" if quick else "2"]
    scripts = {"serving": serving, "training": training, "monitoring": monitoring, "gx": gx}
    files = {"serving": "serving", "training": "training_flow", "monitoring": "monitoring", "gx": "gx_gate"}
    return {
        part: [
            sys.executable,
            str(BENCH_DIR / f"{files[part]}.py"),
            *scripts[part],
            "--output",
            str(RESULTS / f"{part}.md"),
        ]
        for part in args.parts
    }


def run_part(part: str, command: list[str], timeout: float) -> tuple[str, dict[str, str]]:
    """The part's report (or the reason it has none) and how it ran."""
    before, started = load_average(), time.perf_counter()
    log = RESULTS / f"{part}.log"
    report_file = Path(command[command.index("--output") + 1])
    report_file.unlink(missing_ok=True)
    print(f"[run_all {time.strftime('%H:%M:%S')}] {part}: {shlex.join(command[1:])}", flush=True)
    with log.open("wb") as out:
        try:
            result = subprocess.run(command, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            status = "ok" if result.returncode == 0 else f"failed (exit {result.returncode})"
        except subprocess.TimeoutExpired:
            status = f"stopped after {timeout:.0f} s"
    took = time.perf_counter() - started
    meta = {"status": status, "seconds": f"{took:.0f}", "load before": before, "load after": load_average()}
    if status == "ok" and report_file.exists():
        return report_file.read_text(), meta
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    return f"**{part}: {status}**; the last lines of `{log.relative_to(PROJECT_ROOT)}`:\n\n```\n{tail}\n```\n", meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 2 s serving windows")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which benchmarks to run")
    parser.add_argument("--serving-seconds", type=float, default=10, help="measured seconds per server and load")
    parser.add_argument("--training-rows", type=int, nargs="+", help="training flow sizes (default 10000 100000)")
    parser.add_argument("--monitoring-rows", type=int, nargs="+", help="monitoring sizes (default 100000 1000000)")
    parser.add_argument("--gx-rows", type=int, nargs="+", help="GX gate sizes (default 1000000)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per part")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.md", help="the joined report")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)

    command = shlex.join([".venv/bin/python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])])
    began, started_at = time.perf_counter(), datetime.now(UTC)
    info = machine_info(["bentoml", "onnxruntime", "scikit-learn", "mlflow", "prefect", "great-expectations"])
    info["load average at start (1/5/15 min)"] = load_average()
    sections, runs = [], {}
    for part, part_command in commands(args).items():
        report, runs[part] = run_part(part, part_command, args.timeout)
        sections.append(report)
    info["load average at end (1/5/15 min)"] = load_average()

    lines = [
        f"# Benchmarks, {started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}` ({time.perf_counter() - began:.0f} s in all). Every figure is measured in this run on "
        "this machine; compare ratios, and CPU seconds where the load average was high.",
        "",
        "| part | status | seconds | load avg before | load avg after |",
        "|---|---|---:|---|---|",
        *(
            f"| {p} | {m['status']} | {m['seconds']} | {m['load before']} | {m['load after']} |"
            for p, m in runs.items()
        ),
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        "",
    ]
    text = "\n".join(lines) + "\n" + "\n".join(sections)
    args.output.write_text(text)
    print(text)
    print(f"written to {args.output}")
    return 0 if all(m["status"] == "ok" for m in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
