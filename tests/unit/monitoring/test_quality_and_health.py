"""Quality on the labels' clock, per version and variant; the service's health figures."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_core import security_log
from mlops_core.settings import MonitoringSettings
from stages.monitoring.health import health_figures
from stages.monitoring.quality import champion_quality, quality_by_group

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LAST_CHECK = NOW - timedelta(hours=1)
POLICY = MonitoringSettings(min_labelled_rows=50)
HOLDOUT = {"roc_auc": 0.9, "accuracy": 0.85}


def labelled(version: int, variant: str, rows: int, *, skill: float, arrived: datetime, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    probability = np.clip(0.5 + skill * (truth - 0.5) + rng.normal(0, 0.25, rows), 0, 1)
    return pd.DataFrame(
        {
            "model_version": version,
            "variant": variant,
            "label_ts": pd.Timestamp(arrived),
            "truth": truth,
            "probability": probability,
        }
    )


def test_each_version_and_variant_is_scored_apart_and_only_the_champion_against_the_holdout():
    rows = pd.concat(
        [
            labelled(3, "champion", 200, skill=0.8, arrived=NOW - timedelta(minutes=5), seed=1),
            labelled(2, "champion", 200, skill=0.0, arrived=NOW - timedelta(minutes=5), seed=2),  # an old, bad one
            labelled(4, "challenger", 100, skill=0.4, arrived=NOW - timedelta(minutes=5), seed=3),
        ]
    )
    results = quality_by_group(rows, 3, HOLDOUT, POLICY, new_since=LAST_CHECK)
    assert [(r.version, r.variant, r.labelled_rows) for r in results] == [
        (2, "champion", 200),
        (3, "champion", 200),
        (4, "challenger", 100),
    ]
    champion = champion_quality(results, 3)
    assert champion.current["roc_auc"] > 0.85 and champion.drop < POLICY.quality_drop_threshold
    assert all(r.holdout == {} and r.drop == 0 for r in results if r is not champion)


def test_only_groups_with_labels_new_since_the_last_check_are_judged():
    old = labelled(3, "champion", 200, skill=0.0, arrived=LAST_CHECK - timedelta(days=2), seed=4)
    assert quality_by_group(old, 3, HOLDOUT, POLICY, new_since=LAST_CHECK) == []
    late = labelled(3, "champion", 10, skill=0.0, arrived=NOW - timedelta(minutes=1), seed=5)
    [result] = quality_by_group(pd.concat([old, late]), 3, HOLDOUT, POLICY, new_since=LAST_CHECK)
    assert (result.labelled_rows, result.new_labels) == (210, 10)  # the rolling window, judged on new labels
    assert result.drop > POLICY.quality_drop_threshold


def test_health_figures_count_refusals_among_requests_and_bursts_in_their_busiest_hour():
    kinds = (
        [security_log.INVALID_KEY] * 60
        + [security_log.RATE_LIMITED] * 20
        + [security_log.INVALID_INPUT] * 10
        + [security_log.SERVER_ERROR] * 10
    )
    hours = [NOW - timedelta(hours=i % 3) for i in range(60)] + [NOW] * 40  # the keys over 3 hours
    events = pd.DataFrame({"event_type": kinds, "ts": hours})
    figures = health_figures(np.r_[np.full(895, 20.0), np.full(5, 2_000.0)], events)
    assert figures.requests == 1_000
    assert figures.latency_p99_ms == 20.0  # 5 slow answers of 900 are under 1 %
    assert health_figures(np.r_[np.full(880, 20.0), np.full(20, 2_000.0)], events).latency_p99_ms == 2_000
    assert figures.client_error_rate == pytest.approx(0.07)
    assert (figures.rate_limited_rate, figures.server_error_rate) == (pytest.approx(0.02), pytest.approx(0.01))
    assert (figures.refused_keys_per_hour, figures.rate_limited_per_hour) == (20, 20)


def test_an_empty_window_has_no_latency_and_no_rates():
    figures = health_figures(np.array([]), pd.DataFrame(columns=["event_type", "ts"]))
    assert figures.latency_p99_ms is None and figures.requests == 0 and figures.client_error_rate == 0
    assert figures.refused_keys_per_hour == 0
