"""The reliability suite: fuzzing, load, faults and security probes against real servers on 127.0.0.1.

Sizes are bounded for CI; ``MLOPS_RELIABILITY_SCALE`` (default 1) multiplies them for a manual, larger run
(e.g. ``MLOPS_RELIABILITY_SCALE=10 pytest tests/reliability``). The figures each test records (cases run,
errors, rows reconciled) are printed at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mlops_core import registry
from mlops_core.api_keys import ADMIN, KeyStore
from mlops_core.features import FeatureRepository
from mlops_core.settings import Settings
from services.openapi import ENTITY_EXAMPLE
from stages.data.generator import generate_day
from stages.features.training_sets import materialize, write_offline
from tests.service.conftest import (  # noqa: F401  (fixtures shared with the service tests)
    Server,
    feature_rows,
    mlflow_server,
    registry_settings,
    service_environment,
    start_service,
    stop_group,
)
from tests.service.training import register_model

# Applicants in the online feature store of the reliability service, the documented example's id among them.
ENTITY_IDS = (ENTITY_EXAMPLE, ENTITY_EXAMPLE + 1, ENTITY_EXAMPLE + 2)
SCALE = float(os.environ.get("MLOPS_RELIABILITY_SCALE", "1"))
FIGURES = pytest.StashKey[dict[str, dict[str, object]]]()


def scaled(size: int) -> int:
    """A CI size times the manual scale."""
    return max(1, round(size * SCALE))


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> dict[str, dict[str, object]]:
    """Per test, the figures it reports (printed by ``pytest_terminal_summary``)."""
    return request.config.stash.setdefault(FIGURES, {})


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    recorded = config.stash.get(FIGURES, {})
    if not recorded:
        return
    terminalreporter.section(f"reliability figures (scale {SCALE:g})")
    for name, values in recorded.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@dataclass
class World:
    """A served champion, its registry settings and keys by role (raw keys, to probe logs for leaks)."""

    server: Server
    settings: Settings
    keys: dict[str, str]
    store: KeyStore


def serve_champion(
    root: Path, tracking_uri: str | None = None, *, entities: tuple[int, ...] = (), **overrides: str
) -> World:
    """Register one version as champion, create keys, start ``bentoml serve`` (2 workers) on it.

    ``entities``: applicant ids put in the online feature store first, so /predict_entity can answer them.
    """
    settings = registry_settings(root / "state", tracking_uri)
    version = register_model(settings, root / "data", seed=11)
    if entities:
        store_entities(settings, entities)
    registry.connect(settings).set_registered_model_alias(
        settings.mlflow.registered_model, registry.CHAMPION, str(version)
    )
    store = KeyStore(settings.key_store)
    keys = {
        # Load and fuzzing send far more than the default per-key limit.
        "user": store.create("reliability", rate_limit=10_000_000)[1],
        "admin": store.create("reliability admin", scope=ADMIN, rate_limit=10_000_000)[1],
    }
    env = service_environment(settings.state_dir, **overrides)
    if tracking_uri:
        env["MLOPS_MLFLOW__TRACKING_URI"] = tracking_uri
    server = start_service(env, root / "service.log")
    return World(server, settings, keys, store)


def store_entities(settings: Settings, ids: tuple[int, ...]) -> None:
    """Generated applicants with these ids, written offline and materialised into the online store."""
    applicants = generate_day(date(2026, 11, 1), len(ids), seed=9)
    applicants["applicant_id"] = list(ids)
    features = FeatureRepository(settings)
    features.apply()
    write_offline(features, applicants, "application_ts")
    materialize(features, datetime(2026, 10, 31, tzinfo=UTC))


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One service for fuzzing, load and security probes; the registry is a SQLite store in its state dir."""
    served = serve_champion(
        tmp_path_factory.mktemp("reliability"), entities=ENTITY_IDS, MLOPS_SERVICE__MAX_BATCH_ROWS="50"
    )
    try:
        yield served
    finally:
        stop_group(served.server.process)
