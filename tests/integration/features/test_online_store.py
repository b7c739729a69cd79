"""The bulk SQLite online store against Feast's own: the same table rows, byte for byte, and the same online
reads, for first writes, overwrites and values missing."""

from __future__ import annotations

import sqlite3
from datetime import date

import numpy as np
import pandas as pd
import pytest

from feature_repo import definitions
from mlops_core.features import FeatureRepository, feature_rows
from mlops_core.online_store import BulkSqliteOnlineStore
from mlops_core.settings import BULK_SQLITE_ONLINE_STORE, Settings
from stages.data.generator import generate_day


def repository_with(settings: Settings, online_store: dict) -> FeatureRepository:
    features = settings.features.model_copy(update={"online_store": online_store})
    repository = FeatureRepository(settings.model_copy(update={"features": features}))
    repository.apply()
    return repository


def applicant_rows(entity_ids: list[int], day: int, seed: int) -> pd.DataFrame:
    """Feature rows of the view's types (nullable integers, text and numbers with gaps), stamped at
    sub-second times of ``day``."""
    frame = generate_day(date(2026, 3, 1), len(entity_ids), seed=seed).reset_index(drop=True)
    frame["applicant_id"] = entity_ids
    frame.loc[::7, "age"] = None  # an integer feature missing
    frame.loc[::11, "region"] = None
    stamps = pd.Series(pd.Timestamp(2026, 3, day, tz="UTC") + pd.to_timedelta(np.arange(len(frame)) * 1.37, "s"))
    return feature_rows(frame, stamps)


def table_rows(repository: FeatureRepository) -> list[tuple]:
    path = repository.store.config.online_store.path
    table = f"{repository.config.project}_{repository.config.view}"
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()


def test_the_bulk_store_writes_feasts_rows_and_reads_alike(settings: Settings, tmp_path) -> None:
    bulk = repository_with(settings, {})  # the default
    assert isinstance(bulk.store._get_provider().online_store, BulkSqliteOnlineStore)
    assert bulk.store.config.online_store.type == BULK_SQLITE_ONLINE_STORE
    feast = repository_with(settings, {"type": "sqlite", "path": str(tmp_path / "feast-online.db")})

    first = applicant_rows(list(range(300)), day=2, seed=5)
    # Half of them again, newer and changed, plus new applicants: updates in place and inserts after them.
    second = applicant_rows(list(range(150, 450)), day=3, seed=6)
    for rows in (first, second):
        bulk.write_online(rows)
        feast.store.write_to_online_store(settings.features.view, df=rows)
    # Feast's own write path into the bulk store (its online_write_batch): one applicant updated.
    one = applicant_rows([7], day=4, seed=8)
    bulk.store.write_to_online_store(settings.features.view, df=one)
    feast.store.write_to_online_store(settings.features.view, df=one)

    written = table_rows(bulk)
    assert len(written) == 450 * (len(definitions.FEATURES) + 1)
    assert written == table_rows(feast)  # rowids, keys, values, texts, stamps: byte for byte

    entities = [{definitions.JOIN_KEY: entity} for entity in [*range(0, 460, 3), 7]]
    references = bulk.references()

    def answers(repository: FeatureRepository) -> dict:
        response = repository.store.get_online_features(features=references, entity_rows=entities)
        return response.to_dict(include_event_timestamps=True)

    read = answers(bulk)
    assert read == answers(feast)
    assert read["loan_purpose"][entities.index({definitions.JOIN_KEY: 7})] == one.loc[0, "loan_purpose"]
    assert read["age"][entities.index({definitions.JOIN_KEY: 7})] is None  # missing in its newest row
    assert bulk.lookup(449).values["credit_score"] == pytest.approx(second.iloc[-1]["credit_score"])
