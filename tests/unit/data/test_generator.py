from datetime import date

import numpy as np
import pandas as pd

from stages.data.generator import ENTITY_ID, TARGET, TIMESTAMP, generate_day, write_batches

DAY = date(2026, 11, 1)


def test_same_seed_and_day_give_identical_data():
    a = generate_day(DAY, 2_000, seed=3)
    b = generate_day(DAY, 2_000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not generate_day(DAY, 2_000, seed=4).equals(a)


def test_day_is_independent_of_the_other_days_written(tmp_path):
    short = write_batches(tmp_path / "a", rows=3_000, days=3, start=DAY)
    long = write_batches(tmp_path / "b", rows=5_000, days=5, start=DAY)
    pd.testing.assert_frame_equal(pd.read_parquet(short[0]), pd.read_parquet(long[0]))
    assert [p.name for p in long] == [f"2026-11-0{d}.parquet" for d in range(1, 6)]


def test_realistic_shape_ids_timestamps_and_missing_values():
    frame = generate_day(DAY, 20_000)
    assert frame[ENTITY_ID].dtype == np.int64
    assert str(frame[TIMESTAMP].dt.tz) == "UTC"
    assert frame[TIMESTAMP].dt.date.eq(DAY).all()
    assert frame[TIMESTAMP].is_monotonic_increasing
    assert 0.1 < frame[TARGET].mean() < 0.35
    missing = frame.isna().mean()
    assert missing[["annual_income", "employment_years", "credit_score", "home_ownership"]].gt(0.005).all()
    assert missing[[TARGET, ENTITY_ID, TIMESTAMP, "loan_amount"]].eq(0).all()
    assert {"home_ownership", "loan_purpose", "region"} <= set(frame.select_dtypes("category").columns)
