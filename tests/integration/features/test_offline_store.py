"""The as-of offline store against Feast's own DuckDB store: the same training sets from the same offline rows,
with and without a TTL, rows without a feature row included."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_core.features import FeatureRepository
from mlops_core.offline_store import AsofDuckDBOfflineStore
from mlops_core.settings import ASOF_OFFLINE_STORE, Settings
from stages.data.generator import generate_day
from stages.features.training_sets import training_set, write_offline

START = pd.Timestamp(2026, 3, 1, tz="UTC")


def applications(entity_ids: np.ndarray, stamps: list[pd.Timestamp], seed: int) -> pd.DataFrame:
    frame = generate_day(date(2026, 3, 1), len(entity_ids), seed=seed).reset_index(drop=True)
    frame["applicant_id"] = entity_ids
    frame["application_ts"] = stamps
    return frame


def joined_with(settings: Settings, store: str, ttl_days: int, labels: pd.DataFrame):
    features = settings.features.model_copy(update={"offline_store": {"type": store}, "ttl_days": ttl_days})
    repository = FeatureRepository(settings.model_copy(update={"features": features}))
    repository.apply()  # the view with this TTL
    return training_set(repository, labels, entity_id="applicant_id", timestamp="application_ts", target="defaulted")


@pytest.mark.parametrize("ttl_days", [0, 2])
def test_the_asof_join_gives_feasts_training_set(settings: Settings, ttl_days: int) -> None:
    repository = FeatureRepository(settings)
    assert isinstance(repository.store._get_provider().offline_store, AsofDuckDBOfflineStore)  # the default
    rng = np.random.default_rng(11)
    # 40 applicants, 0 to 6 feature rows each at distinct minutes over 10 days (no ties: either store may keep
    # either of two rows stamped alike).
    counts = rng.integers(0, 7, size=40)
    entity_ids = np.repeat(np.arange(40), counts)
    minutes = rng.choice(10 * 24 * 60, size=len(entity_ids), replace=False)
    history_stamps = [START + pd.Timedelta(minutes=int(m)) for m in minutes]
    repository.apply()
    write_offline(repository, applications(entity_ids, history_stamps, seed=3), "application_ts")

    # 300 applications at random minutes, plus boundaries: exactly at a feature row's stamp and exactly one TTL
    # after it (both still see that row), one minute past the TTL (expired), an applicant with no rows at all.
    label_ids = list(rng.integers(0, 45, size=300))
    label_stamps = [START + pd.Timedelta(minutes=int(m)) for m in rng.integers(0, 12 * 24 * 60, size=300)]
    first = history_stamps[0]
    boundaries = [first, first + pd.Timedelta(days=2), first + pd.Timedelta(days=2, minutes=1), first]
    label_ids += [entity_ids[0]] * 3 + [99]
    label_stamps += boundaries
    labels = applications(np.array(label_ids), label_stamps, seed=4)

    feast = joined_with(settings, "duckdb", ttl_days, labels)
    asof = joined_with(settings, ASOF_OFFLINE_STORE, ttl_days, labels)

    assert asof.rows_without_features == feast.rows_without_features > 0
    pd.testing.assert_frame_equal(asof.frame, feast.frame)
    assert (asof.frame["applicant_id"] == 99).sum() == 0
