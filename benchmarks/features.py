"""Online feature lookup latency: the Feast online store directly against the service's cached lookup.

The script fills a temporary feature store (SQLite online store, the project's definitions) with ``--entities``
applicants, then, in this one process, times ``--lookups`` single-entity lookups drawn at random from the
``--hot`` most requested entities (a skewed, realistic request stream):

* **store**: ``FeatureRepository.lookup`` for every request (what a cacheless service would do);
* **cache, warm**: ``CachedFeatures.get`` once every hot entity has been read (hits: a journal ``stat`` and a
  dictionary read);
* **cache, misses**: ``CachedFeatures.get`` on a cache too small to hold anything (every request a miss: the
  cost the cache adds on top of the store);
* **cache after updates**: one in 20 requests preceded by an update of another entity (journal grows; the
  updated entity is dropped from the cache).

Run from the project root:

    .venv/bin/python benchmarks/features.py [--entities 10000] [--lookups 5000] [--hot 1000]
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

import mlops_core  # noqa: E402,F401  (telemetry off before the libraries load)
from benchmarks.machine import machine_info  # noqa: E402

# isort: split
import argparse  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402

import numpy as np  # noqa: E402

from mlops_core.features import CachedFeatures, FeatureRepository  # noqa: E402
from mlops_core.settings import Settings  # noqa: E402
from stages.data.generator import generate_day  # noqa: E402
from stages.features.training_sets import materialize, write_offline  # noqa: E402


def timed(lookups: list[int], lookup: Callable[[int], object], before: Callable[[int], None] | None = None):
    """Per-lookup latencies in milliseconds (``before`` runs untimed ahead of each lookup)."""
    latencies = []
    for index, entity_id in enumerate(lookups):
        if before is not None:
            before(index)
        started = time.perf_counter()
        lookup(entity_id)
        latencies.append((time.perf_counter() - started) * 1000)
    return np.array(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--hot", type=int, default=1_000, help="Requests go to this many distinct entities.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        started = time.perf_counter()
        repository = FeatureRepository(Settings(state_dir=Path(tmp)))
        repository.apply()
        applicants = generate_day(date(2026, 11, 1), args.entities, seed=args.seed)
        applicants["applicant_id"] = np.arange(1, args.entities + 1)
        write_offline(repository, applicants, "application_ts")
        materialize(repository, datetime(2026, 10, 31, tzinfo=UTC))
        setup = time.perf_counter() - started

        rng = random.Random(args.seed)
        hot = rng.sample(range(1, args.entities + 1), min(args.hot, args.entities))
        lookups = [rng.choice(hot) for _ in range(args.lookups)]
        cold = [e for e in range(1, args.entities + 1) if e not in set(hot)][:50]

        repository.lookup(lookups[0])  # first-call costs out of the timings
        results = {"store": timed(lookups, repository.lookup)}
        warm = CachedFeatures(repository, ttl_seconds=3600, max_entities=args.entities)
        for entity_id in hot:
            warm.get(entity_id)
        results["cache, warm"] = timed(lookups, warm.get)
        tiny = CachedFeatures(repository, ttl_seconds=3600, max_entities=1)
        results["cache, misses"] = timed(lookups, tiny.get)

        def update_sometimes(index: int) -> None:
            if index % 20 == 0:
                repository.update(cold[index // 20 % len(cold)], {"credit_score": 600.0 + index % 7})

        results["cache after updates (1 in 20)"] = timed(lookups, warm.get, update_sometimes)

    baseline = np.percentile(results["store"], 50)
    print(f"# Online feature lookups: {args.lookups:,} single-entity lookups over {len(hot):,} entities\n")
    for name, value in machine_info(["feast", "cachetools"]).items():
        print(f"- {name}: {value}")
    print(f"- setup (apply, {args.entities:,} offline rows, materialise): {setup:.1f} s\n")
    print("| lookup | p50 ms | p99 ms | mean ms | p50 vs store |")
    print("|---|---:|---:|---:|---:|")
    for name, latencies in results.items():
        p50, p99 = np.percentile(latencies, [50, 99])
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {latencies.mean():.3f} | {p50 / baseline:.3f}x |")


if __name__ == "__main__":
    main()
