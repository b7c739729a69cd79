"""The feature store on a real Feast repository in a temporary state directory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from feature_repo import definitions
from mlops_core.features import (
    CachedFeatures,
    FeatureRepository,
    FeatureStoreError,
    InvalidFeatures,
    UnknownEntity,
    UpdateJournal,
)
from mlops_core.settings import PROJECT_ROOT, Settings
from stages.data.generator import generate_day
from stages.features.training_sets import materialize, training_set, write_offline


def stamp(day: int, hour: int = 0) -> pd.Timestamp:
    return pd.Timestamp(2026, 3, day, hour, tz="UTC")


def applications(entity_ids: list[int], stamps: list[pd.Timestamp], seed: int = 3) -> pd.DataFrame:
    """Generated applications re-keyed to the given entities and times (the generator's columns and types)."""
    frame = generate_day(date(2026, 3, 1), len(entity_ids), seed=seed).reset_index(drop=True)
    frame["applicant_id"] = entity_ids
    frame["application_ts"] = stamps
    return frame


@pytest.fixture
def repository(settings: Settings) -> FeatureRepository:
    repository = FeatureRepository(settings)
    repository.apply()
    return repository


def test_training_set_never_sees_values_recorded_after_the_application(repository: FeatureRepository) -> None:
    # Applicant 1 applies on day 3; the same applicant's values change on day 2 and again on day 5 (after the
    # application). Applicant 2 has no feature row before its application: it must be left out and counted.
    history = applications([1, 1, 2], [stamp(2), stamp(5), stamp(4)])
    history.loc[0, "annual_income"], history.loc[1, "annual_income"] = 40_000.0, 999_999.0
    write_offline(repository, history, "application_ts")
    labels = applications([1, 2], [stamp(3), stamp(3)], seed=4)

    training = training_set(
        repository, labels, entity_id="applicant_id", timestamp="application_ts", target="defaulted"
    )

    assert training.rows_without_features == 1
    assert list(training.frame["applicant_id"]) == [1]
    assert training.frame.loc[0, "annual_income"] == 40_000.0  # the day-2 value, not the day-5 one
    assert training.frame.loc[0, "defaulted"] == labels.loc[0, "defaulted"]
    assert list(training.frame.columns) == list(labels.columns)


def test_training_set_of_a_batch_is_the_batch(repository: FeatureRepository) -> None:
    batch = generate_day(date(2026, 3, 1), 2_000, seed=5)
    write_offline(repository, batch, "application_ts")
    write_offline(repository, batch, "application_ts")  # the same day again adds no duplicate rows
    training = training_set(repository, batch, entity_id="applicant_id", timestamp="application_ts", target="defaulted")
    assert training.rows_without_features == 0
    expected = batch.copy()
    for name in definitions.TEXT_FEATURES:
        expected[name] = expected[name].astype(object)
    pd.testing.assert_frame_equal(training.frame, expected, check_dtype=False, check_categorical=False)
    assert len(list(repository.offline_dir.glob("*.parquet"))) == 1


def test_rows_that_do_not_fit_the_definitions_are_refused(repository: FeatureRepository) -> None:
    batch = applications([1, 2], [stamp(2), stamp(2)])
    batch["age"] = batch["age"].astype(object)
    batch.loc[1, "age"] = "forty"
    with pytest.raises(InvalidFeatures, match="age: 1 value"):
        write_offline(repository, batch, "application_ts")
    with pytest.raises(InvalidFeatures, match="credit_score: column missing"):
        write_offline(repository, batch.drop(columns="credit_score"), "application_ts")
    assert not list(repository.offline_dir.glob("*.parquet"))


def test_materialised_values_are_served_and_updates_win(repository: FeatureRepository) -> None:
    write_offline(repository, applications([1, 1, 2], [stamp(2), stamp(5), stamp(4)]), "application_ts")
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))

    newest = repository.lookup(1)
    assert newest.as_of == stamp(5).to_pydatetime() and not newest.missing
    with pytest.raises(UnknownEntity):
        repository.lookup(77)

    repository.update(1, {"annual_income": 12_345.0})
    assert repository.lookup(1).values["annual_income"] == 12_345.0
    assert repository.lookup(1).values["age"] == newest.values["age"]  # the rest kept
    # Materialising the window again does not bring the older offline value back over the update.
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))
    assert repository.lookup(1).values["annual_income"] == 12_345.0

    with pytest.raises(InvalidFeatures, match="salary: not a feature"):
        repository.update(1, {"salary": 1.0})
    with pytest.raises(InvalidFeatures, match="required for an entity new"):
        repository.update(78, {"annual_income": 1.0})


def test_cache_hits_and_update_invalidates(repository: FeatureRepository) -> None:
    write_offline(repository, applications([1, 2], [stamp(2), stamp(2)]), "application_ts")
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))
    cache = CachedFeatures(repository, ttl_seconds=60, max_entities=10)

    first = cache.get(1)
    assert cache.get(1) is first and (cache.hits, cache.misses) == (1, 1)

    repository.update(1, {"credit_score": 611.0})  # the seed's update_features ...
    assert cache.get(1).values["credit_score"] == 611.0  # ... then get_features: never the cached value
    assert cache.misses == 2
    cache.get(2)
    assert cache.get(2).values == repository.lookup(2).values and cache.hits == 2


def test_an_update_from_another_process_invalidates_the_cache(repository: FeatureRepository) -> None:
    write_offline(repository, applications([1], [stamp(2)]), "application_ts")
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))
    cache = CachedFeatures(repository, ttl_seconds=300, max_entities=10)
    assert cache.get(1).values["credit_score"] != 333.0

    update = textwrap.dedent(
        """
        from mlops_core.features import FeatureRepository
        from mlops_core.settings import get_settings
        FeatureRepository(get_settings()).update(1, {"credit_score": 333.0})
        """
    )
    subprocess.run([sys.executable, "-c", update], check=True, cwd=PROJECT_ROOT, timeout=120)

    assert cache.get(1).values["credit_score"] == 333.0


def test_cache_is_not_trusted_beyond_its_ttl_when_the_store_is_down(repository: FeatureRepository) -> None:
    write_offline(repository, applications([1], [stamp(2)]), "application_ts")
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))
    cache = CachedFeatures(repository, ttl_seconds=1.0, max_entities=10)
    cached = cache.get(1)

    (repository.root / "online.db").write_bytes(b"not a database" * 512)

    assert cache.get(1) is cached  # within the TTL the cached answer stands
    time.sleep(1.1)
    with pytest.raises(FeatureStoreError, match="online store could not be read"):
        cache.get(1)


def test_journal_reads_only_complete_lines_and_restarts_when_recreated(tmp_path) -> None:
    journal = UpdateJournal(tmp_path / "updates.journal")
    assert journal.read_from(0) == ([], 0)
    journal.append([4, 5])
    with journal.path.open("a") as handle:
        handle.write("6")  # a line still being written
    ids, offset = journal.read_from(0)
    assert ids == ["4", "5"] and offset == 4
    journal.path.write_text("")
    assert journal.read_from(offset) == (["*"], 0)


def test_the_update_flow_writes_valid_updates_and_stops_at_an_invalid_one(repository, prefect_harness) -> None:
    from flows.features import feature_update_flow

    write_offline(repository, applications([1, 2], [stamp(2), stamp(2)]), "application_ts")
    materialize(repository, start=datetime(2026, 3, 1, tzinfo=UTC))
    assert feature_update_flow([{"applicant_id": 1, "age": 52}, {"applicant_id": 2, "region": "west"}]) == [1, 2]
    assert repository.lookup(1).values["age"] == 52 and repository.lookup(2).values["region"] == "west"

    with pytest.raises(InvalidFeatures, match="update 1: applicant_id must be an integer"):
        feature_update_flow([{"applicant_id": 1, "age": 53}, {"applicant_id": "2", "age": 1}])
    assert repository.lookup(1).values["age"] == 53 and repository.lookup(2).values["age"] != 1
    with pytest.raises(InvalidFeatures, match="age: 1 value"):
        feature_update_flow([{"applicant_id": 1, "age": "old"}])
    assert repository.lookup(1).values["age"] == 53


def test_a_model_input_without_a_stored_value_is_named() -> None:
    from mlops_core.features import EntityFeatures
    from services.entities import model_row

    stored = EntityFeatures(7, {"age": 40, "credit_score": float("nan")}, None, missing=("region",))
    row, missing = model_row(stored, ["age", "credit_score", "region", "loan_amount"])
    assert row == {"age": 40, "credit_score": None}
    assert missing == ["region", "loan_amount"]
