"""Feast's own CLI on the project's feature repository (the store the pipeline and the service use), and
materialisation that writes only what changed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import db, migrations
from mlops_core.features import FeatureRepository
from mlops_core.settings import PROJECT_ROOT, Settings
from stages.data.generator import generate_day
from stages.features import training_sets
from stages.features.training_sets import materialize, write_offline

FEATURE_REPO = PROJECT_ROOT / "feature_repo"


def test_feast_plans_the_repository_the_project_uses(settings: Settings) -> None:
    from feast.repo_config import load_repo_config

    # The settings fixture has set MLOPS_STATE_DIR, which feature_store.yaml reads.
    feast_config = load_repo_config(FEATURE_REPO, FEATURE_REPO / "feature_store.yaml")
    ours = FeatureRepository(settings).store.config
    assert (feast_config.project, feast_config.registry.path) == (ours.project, ours.registry.path)
    assert feast_config.online_store.path == ours.online_store.path
    assert feast_config.offline_store.type == ours.offline_store.type

    feast = Path(sys.executable).with_name("feast")
    planned = subprocess.run(
        [str(feast), "-c", str(FEATURE_REPO), "plan"],
        env={**os.environ, "FEAST_USAGE": "False"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert planned.returncode == 0, planned.stderr
    assert "Created entity applicant" in planned.stdout
    assert f"Created feature view {settings.features.view}" in planned.stdout


def test_materialisation_writes_only_entities_changed_since_the_last(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(training_sets, "MATERIALIZE_BATCH_ROWS", 2)  # three entities: two batches
    # The record of what was written lives in the database the URL names, not beside the store.
    record_url = f"sqlite:///{tmp_path / 'elsewhere' / 'history.db'}"
    settings = settings.model_copy(
        update={"monitoring": settings.monitoring.model_copy(update={"state_url": record_url})}
    )
    repository = FeatureRepository(settings)
    repository.apply()
    rows = generate_day(date(2026, 3, 1), 4, seed=3).reset_index(drop=True)
    rows["applicant_id"] = [1, 2, 3, 3]
    rows["application_ts"] = [pd.Timestamp(2026, 3, day, tz="UTC") for day in (2, 2, 2, 3)]
    write_offline(repository, rows, "application_ts")
    start = datetime(2026, 3, 1, tzinfo=UTC)

    first = materialize(repository, start)
    assert (first.entities, first.written) == (3, 3)
    engine = db.engine_for(record_url, migrations.MONITORING_HISTORY)
    recorded = training_sets.last_materialised(engine, settings.features.view)
    engine.dispose()
    stamps = {1: rows.loc[0, "application_ts"], 2: rows.loc[1, "application_ts"], 3: rows.loc[3, "application_ts"]}
    assert dict(zip(recorded["applicant_id"], recorded["event_ts_us"], strict=True)) == {
        entity: stamp.value // 1000 for entity, stamp in stamps.items()
    }
    assert not list(settings.feature_store_dir.glob("*.parquet"))
    assert repository.lookup(3).values["age"] == rows.loc[3, "age"]  # the newest of entity 3's rows
    assert materialize(repository, start).written == 0  # nothing changed since

    newer = rows.iloc[[1]].assign(application_ts=pd.Timestamp(2026, 3, 4, tz="UTC"), age=77)
    write_offline(repository, newer, "application_ts")
    third = materialize(repository, start)
    assert (third.entities, third.written) == (3, 1)
    assert repository.lookup(2).values["age"] == 77
    assert [repository.lookup(e).values["age"] for e in (1, 3)] == [rows.loc[0, "age"], rows.loc[3, "age"]]
