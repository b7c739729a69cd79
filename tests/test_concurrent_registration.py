"""Two trainings registering at once (two workers of a work pool) against one real MLflow store."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mlops_core import registry
from mlops_core.audit import AuditLog
from mlops_core.registry import SemVer
from tests.helpers import register_trained, train_quickly


def test_racing_registrations_get_distinct_semvers_recorded_in_order(settings, loan_batches):
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
