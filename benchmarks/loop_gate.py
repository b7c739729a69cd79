"""Is the loop's retrained version promoted whatever the date? The loop's data, fits and gate, replayed per start date.

    .venv/bin/python benchmarks/loop_gate.py [--dates 40] [--rows-per-day 10000] [--scenario covariate_and_concept]

A day's generated data depends on its date, and ``mlops loop`` starts its data ``--days`` before today, so
its outcome must not hang on the calendar. For each start date this replays, without servers, what the loop
does with the data: version 1 fitted on ``--days`` (5) days of the original distribution, the drifted days that
follow (the ``training/retrain`` deployment's window in prefect.yaml, 3), version 2 fitted on those, each the best of the default candidates on its
newest 20 % (the training stage's own functions and settings), then the promotion gate on version 2's holdout,
version 1 as the champion. Prints a line per date and how many were promoted.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

import mlops_core  # noqa: E402, F401  (telemetry off before any library loads)
from mlops_core.settings import Settings  # noqa: E402
from stages.data.generator import Scenario, write_batches  # noqa: E402
from stages.data.loading import load_window  # noqa: E402
from stages.promotion.gate import gate  # noqa: E402
from stages.training.candidates import (  # noqa: E402
    Candidate,
    Split,
    fit_candidate,
    score_on_holdout,
    select_best,
    training_split,
)
from tooling.loop import DRIFT_SCENARIO, DRIFT_STRENGTH, LOOP_DAYS, LOOP_ROWS_PER_DAY  # noqa: E402
from tooling.stack import declared_deployment  # noqa: E402

FIRST_DATE = date(2026, 12, 2)


@dataclass
class Replay:
    drift_start: date
    champion: str
    retrained: str
    promoted: bool
    improvement: float
    lower_bound: float


def _best(settings: Settings, source: Path, window_days: int | None) -> tuple[Candidate, Split]:
    data = load_window(
        source,
        target=settings.data.target,
        entity_id=settings.data.entity_id,
        timestamp=settings.data.timestamp,
        window_days=window_days,
    )
    split = training_split(data, settings)
    fitted = [
        score_on_holdout(fit_candidate(name, split, seed=settings.training.random_seed), split)
        for name in settings.training.candidates
    ]
    return select_best(fitted, settings.training.primary_metric), split


def replay(drift_start: date, rows_per_day: int, scenario: Scenario, strength: float) -> Replay:
    """The loop's gate decision when its drifted data starts on ``drift_start``."""
    settings, drift_days = Settings(), int(declared_deployment("retrain")["parameters"]["window_days"])
    with TemporaryDirectory(prefix="loop-gate-") as tmp:
        source = Path(tmp)
        first = drift_start - timedelta(days=LOOP_DAYS)
        write_batches(source, rows=rows_per_day * LOOP_DAYS, days=LOOP_DAYS, start=first, seed=0)
        champion, _ = _best(settings, source, None)
        write_batches(
            source,
            rows=rows_per_day * drift_days,
            days=drift_days,
            start=drift_start,
            seed=0,
            scenario=scenario,
            drift_strength=strength,
        )
        retrained, split = _best(settings, source, drift_days)
    truth = split.y_holdout.to_numpy().astype(int)
    champion_scores = champion.pipeline.predict_proba(split.x_holdout)[:, 1]
    verdict = gate(truth, retrained.holdout_probability, champion_scores, settings.promotion)
    test = verdict.test or {}
    improvement, lower_bound = float(test["improvement"]), float(test["lower_bound"])
    return Replay(drift_start, champion.name, retrained.name, verdict.passes, improvement, lower_bound)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=40, help="consecutive drift start dates")
    parser.add_argument("--first", type=date.fromisoformat, default=FIRST_DATE, help="the first of them")
    parser.add_argument("--rows-per-day", type=int, default=LOOP_ROWS_PER_DAY, help="`mlops loop --rows-per-day`")
    parser.add_argument("--scenario", default=DRIFT_SCENARIO, help="the generator's drift scenario")
    parser.add_argument("--strength", type=float, default=DRIFT_STRENGTH, help="`mlops loop --drift-strength`")
    args = parser.parse_args(argv)
    replays = []
    for offset in range(args.dates):
        result = replay(args.first + timedelta(days=offset), args.rows_per_day, args.scenario, args.strength)
        replays.append(result)
        print(
            f"{result.drift_start}  {result.champion} -> {result.retrained}: "
            f"{'promoted' if result.promoted else 'kept the champion'}, "
            f"improvement {result.improvement:+.4f}, lower bound {result.lower_bound:+.4f}",
            flush=True,
        )
    promoted = [r for r in replays if r.promoted]
    print(
        f"promoted on {len(promoted)} of {len(replays)} start dates ({args.scenario} {args.strength}, {args.rows_per_day:,} rows a day)"
    )


if __name__ == "__main__":
    main()
