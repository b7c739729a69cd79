"""Shared fixtures: every test gets its own state directory, MLflow store and copy of the GX context."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import mlops_core  # noqa: F401  (telemetry off before any library loads)
from mlops_core.settings import PROJECT_ROOT, Settings, get_settings
from stages.data.generator import write_batches
from tests.servers import redis_server

COMMITTED_GX = PROJECT_ROOT / "great_expectations"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the session (about 12 s once, then about 1.5 s per flow)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def gx_context(tmp_path: Path) -> Path:
    """A private copy of the committed GX context, so runs write their results and Data Docs elsewhere."""
    target = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


@pytest.fixture
def settings(tmp_path: Path, gx_context: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at temp state, as a user would configure them through the environment."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_VALIDATION__CONTEXT_DIR", str(gx_context))
    # Two fast candidates keep flow tests quick; the default set is exercised by the slow test.
    monkeypatch.setenv("MLOPS_TRAINING__CANDIDATES", '["logistic_regression", "hist_gradient_boosting"]')
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def loan_batches(settings: Settings) -> Path:
    """Four days of generated loan applications in the configured data directory."""
    write_batches(settings.data_source, rows=4_000, days=4, start=date(2026, 11, 1), seed=7)
    return settings.data_source


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of the test's own, without persistence."""
    with redis_server(tmp_path / "redis") as url:
        yield url
