"""Two trainings registering at once (two workers of a work pool) against one real MLflow store, with the audit
log whose lock numbers them in a SQLite file (the default) or in PostgreSQL (an advisory lock)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_core import registry
from mlops_core.registry import SemVer
from mlops_core.settings import get_settings
from stages.promotion.audit import AuditLog
from tests.helpers import register_trained, train_quickly
from tests.servers import postgres_cluster


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def audit_settings(request, settings, monkeypatch):
    if request.param == "sqlite":
        yield settings
        return
    with postgres_cluster(("mlops",)) as server:
        monkeypatch.setenv("MLOPS_PROMOTION__AUDIT_URL", f"postgresql+psycopg://{server}/mlops")
        get_settings.cache_clear()
        yield get_settings()


def test_racing_registrations_get_distinct_semvers_recorded_in_order(audit_settings, loan_batches):
    settings = audit_settings
    trained = [train_quickly(settings, loan_batches, seed=seed) for seed in (0, 1)]
    start = threading.Barrier(len(trained))

    def register(run):
        start.wait()
        return register_trained(settings, run)

    with ThreadPoolExecutor(len(trained)) as pool:
        registered = list(pool.map(register, trained))

    assert len({v.semver for v in registered}) == len(registered), [v.semver for v in registered]
    model = settings.mlflow.registered_model
    in_registry = registry.model_versions(registry.connect(settings), model)
    assert [(int(v.version), v.tags[registry.TAG_SEMVER]) for v in in_registry] == sorted(
        (v.version, v.semver) for v in registered
    )
    recorded = AuditLog(settings.audit_url).registrations(model)
    assert [(r.version, r.semver, r.training_run_id) for r in recorded] == sorted(
        (v.version, v.semver, v.run_id) for v in registered
    )
    # Numbered in the order they registered: the later version has the higher semantic version.
    assert SemVer.parse(recorded[0].semver) < SemVer.parse(recorded[1].semver)
