from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from stages.data.generator import write_batches
from stages.data.loading import DataLoadError, content_digest, load_window

KW = {"target": "defaulted", "entity_id": "applicant_id", "timestamp": "application_ts"}


@pytest.fixture
def batches(tmp_path) -> Path:
    write_batches(tmp_path / "data", rows=1_000, days=5, start=pd.Timestamp("2026-11-01").date())
    return tmp_path / "data"


def test_loads_all_batches_in_time_order_with_plain_string_categories(batches):
    loaded = load_window(batches, **KW)
    assert loaded.rows == 1_000
    assert len(loaded.files) == 5
    assert loaded.frame["application_ts"].is_monotonic_increasing
    assert loaded.frame["home_ownership"].dtype == object
    assert "defaulted" not in loaded.feature_columns and "applicant_id" not in loaded.feature_columns


def test_window_days_keeps_the_newest_batches(batches):
    loaded = load_window(batches, window_days=2, **KW)
    assert [Path(f).name for f in loaded.files] == ["2026-11-04.parquet", "2026-11-05.parquet"]
    assert loaded.rows == 400


def test_digest_is_stable_and_sensitive_to_one_value(batches):
    first = load_window(batches, **KW)
    assert load_window(batches, **KW).digest == first.digest
    changed = first.frame.copy()
    changed.loc[10, "loan_amount"] += 0.01
    assert content_digest(changed) != first.digest


@pytest.mark.parametrize("timestamp", ["application_ts", None])
def test_a_window_without_its_rows_keeps_what_later_steps_read(batches, timestamp):
    from stages.training.model_card import training_window

    loaded = load_window(batches, **KW)
    shuffled = replace(loaded, frame=loaded.frame.sample(frac=1, random_state=0))  # the span, whatever the order
    released = shuffled.without_rows(timestamp)
    assert len(released.frame) == (2 if timestamp else 1)
    assert (released.rows, released.digest, list(released.frame.columns)) == (
        1_000,
        loaded.digest,
        list(loaded.frame.columns),
    )
    expected = training_window(loaded.frame, loaded.files, timestamp)
    assert training_window(released.frame, released.files, timestamp) == expected
    assert released.without_rows(timestamp) is released


def test_csv_and_parquet_of_the_same_rows_load_alike(batches, tmp_path):
    frame = load_window(batches, **KW).frame
    frame.to_csv(tmp_path / "all.csv", index=False)
    from_csv = load_window(tmp_path / "all.csv", **KW).frame
    assert list(from_csv.dtypes.astype(str)) == list(frame.dtypes.astype(str))


def _file(name: str, content: bytes):
    def make(directory: Path) -> Path:
        path = directory / name
        path.write_bytes(content)
        return path

    return make


def _empty_dir(directory: Path) -> Path:
    (directory / "nodata").mkdir()
    return directory / "nodata"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "does not exist"),
        (_file("empty.csv", b""), "is empty"),
        (_file("header.csv", b"a,b,defaulted\n"), "holds no rows"),
        (_file("junk.parquet", b"\x00not parquet"), "could not be read"),
        (_file("data.json", b"{}"), "unsupported file type"),
        (_empty_dir, "no .parquet or .csv"),
    ],
    ids=["missing", "empty", "header-only", "unreadable", "wrong-type", "empty-dir"],
)
def test_bad_sources_are_refused_with_the_reason(tmp_path, make, message):
    with pytest.raises(DataLoadError, match=message):
        load_window(make(tmp_path), **KW)


def test_wrong_target_names_the_target_and_the_columns(batches):
    with pytest.raises(DataLoadError, match=r"target column 'default' not found.*applicant_id"):
        load_window(batches, **{**KW, "target": "default"})


def test_batches_with_different_columns_are_refused(batches):
    odd = pd.read_parquet(batches / "2026-11-05.parquet").drop(columns=["region"])
    odd.to_parquet(batches / "2026-11-05.parquet")
    with pytest.raises(DataLoadError, match=r"missing \['region'\]"):
        load_window(batches, **KW)


def test_unparseable_timestamps_are_refused(tmp_path, batches):
    frame = load_window(batches, **KW).frame.astype({"application_ts": str})
    frame.loc[3, "application_ts"] = "yesterday-ish"
    frame.to_csv(tmp_path / "bad_ts.csv", index=False)
    with pytest.raises(DataLoadError, match="not dates"):
        load_window(tmp_path / "bad_ts.csv", **KW)
