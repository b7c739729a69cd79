"""Promotion, the alias audit log and rollback against a real MLflow store and audit database."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from mlops_core import registry
from mlops_core.settings import PromotionSettings
from stages.data.generator import write_batches
from stages.promotion.aliases import PromotionError, alias_version, promote, rollback
from stages.promotion.audit import AuditLog
from tests.helpers import register_quickly

MODEL = "loan-default"


@pytest.fixture
def sources(settings, tmp_path):
    """Data directories for versions of known relative quality (all with the same input schema)."""
    paths = {}
    for name, rows, scenario, seed in [
        ("concept", 3_000, "concept", 1),  # a model of another label relation: poor on today's data
        ("normal", 8_000, "none", 2),
        ("normal-more", 8_000, "none", 3),
        ("tiny", 300, "none", 4),
    ]:
        paths[name] = tmp_path / name
        write_batches(paths[name], rows=rows, days=4, start=date(2026, 11, 1), seed=seed, scenario=scenario)
    return paths


def _tags(settings, version):
    return registry.connect(settings).get_model_version(MODEL, str(version)).tags


def _champion(settings):
    found = alias_version(registry.connect(settings), MODEL, "champion")
    return int(found.version) if found else None


def test_first_model_over_and_under_the_floor(settings, sources, monkeypatch):
    v1 = register_quickly(settings, sources["normal"])
    strict = settings.model_copy(update={"promotion": PromotionSettings(floor={"roc_auc": 0.99})})
    decision = promote(strict, v1.version)
    assert decision.outcome == "rejected" and not decision.moved
    assert _champion(settings) is None
    assert "below the floor" in _tags(settings, 1)["promotion.reasons"]
    assert AuditLog(settings.audit_url).history(MODEL) == []

    decision = promote(settings, v1.version)
    assert decision.outcome == "promoted" and _champion(settings) == 1
    assert "clears the floor" in _tags(settings, 1)["promotion.reasons"]


def test_better_promoted_equal_and_worse_kept_out_with_semver_bumps(settings, sources):
    weak = register_quickly(settings, sources["concept"])
    assert weak.semver == "1.0.0"
    promote(settings, weak.version, force=True, reason="bootstrap a weak champion")

    better = register_quickly(settings, sources["normal"], candidate="hist_gradient_boosting")
    assert better.semver == "1.1.0"  # MINOR: new data
    decision = promote(settings, better.version)
    assert decision.outcome == "promoted", decision.reasons
    assert decision.test["lower_bound"] > 0 and decision.champion_metrics is not None
    assert _champion(settings) == better.version

    same = register_quickly(settings, sources["normal"], candidate="hist_gradient_boosting")
    assert same.semver == "1.1.1"  # PATCH: same data and parameters
    decision = promote(settings, same.version)
    assert decision.outcome == "rejected" and "not significant" in decision.reasons[0]
    assert _tags(settings, same.version)["promotion.outcome"] == "rejected"

    worse = register_quickly(settings, sources["tiny"])
    decision = promote(settings, worse.version)
    assert decision.outcome == "rejected"
    assert _champion(settings) == better.version
    moves = AuditLog(settings.audit_url).history(MODEL, "champion")
    assert [(m.from_version, m.to_version) for m in moves] == [(None, 1), (1, 2)]


def test_schema_change_is_major_and_needs_force(settings, sources):
    v1 = register_quickly(settings, sources["normal"])
    promote(settings, v1.version)
    narrower = register_quickly(settings, sources["normal-more"], drop=("credit_score",))
    assert narrower.semver == "2.0.0"  # MAJOR: the input schema changed
    decision = promote(settings, narrower.version)
    # The champion needs credit_score, which the new holdout lacks: no like-for-like comparison.
    assert decision.outcome == "rejected" and "cannot score" in decision.reasons[0]
    decision = promote(settings, narrower.version, force=True, reason="credit bureau feed retired", actor="ana")
    assert decision.outcome == "forced" and _champion(settings) == narrower.version
    last = AuditLog(settings.audit_url).history(MODEL)[-1]
    assert last.forced and last.actor == "ana" and "credit bureau feed retired" in last.reason
    assert _tags(settings, narrower.version)["promotion.outcome"] == "forced"


def test_rollback_twice_walks_back_and_then_stops(settings, sources):
    for name in ("normal", "normal-more", "tiny"):
        version = register_quickly(settings, sources[name])
        promote(settings, version.version, force=True, reason=f"load {name}")
    assert _champion(settings) == 3

    assert rollback(settings, reason="v3 misbehaves").version == 2
    assert rollback(settings, reason="v2 too").version == 1
    assert _champion(settings) == 1
    with pytest.raises(PromotionError, match="no earlier champion"):
        rollback(settings, reason="and again")
    assert _champion(settings) == 1

    assert rollback(settings, to_version=3, reason="fixed upstream").version == 3
    actions = [(m.action, m.from_version, m.to_version) for m in AuditLog(settings.audit_url).history(MODEL)]
    assert actions == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
        ("rollback", 1, 3),
    ]


def test_rollback_with_no_history_changes_nothing(settings, sources):
    with pytest.raises(PromotionError, match="no earlier champion"):
        rollback(settings, reason="nothing to undo")
    register_quickly(settings, sources["normal"])
    promote(settings, 1)
    with pytest.raises(PromotionError, match="no earlier champion"):
        rollback(settings, reason="only one champion so far")
    assert _champion(settings) == 1


def test_bad_promotion_requests_change_nothing(settings, sources):
    v1 = register_quickly(settings, sources["normal"])
    promote(settings, v1.version)
    client = registry.connect(settings)
    before = AuditLog(settings.audit_url).history(MODEL)

    with pytest.raises(PromotionError, match="does not exist"):
        promote(settings, 42)
    with pytest.raises(PromotionError, match="already champion"):
        promote(settings, 1)
    untagged = client.create_model_version(MODEL, client.get_model_version(MODEL, "1").source)
    with pytest.raises(PromotionError, match="lacks required tags"):
        promote(settings, int(untagged.version))
    v3 = register_quickly(settings, sources["normal-more"])
    client.set_model_version_tag(MODEL, str(v3.version), registry.TAG_SIGNATURE_DIGEST, "another-schema")
    with pytest.raises(PromotionError, match="same MAJOR"):
        promote(settings, v3.version)
    with pytest.raises(PromotionError, match="needs a reason"):
        promote(settings, v3.version, force=True)

    assert _champion(settings) == 1
    assert AuditLog(settings.audit_url).history(MODEL) == before


def test_racing_promotions_leave_a_consistent_state(settings, sources):
    for name in ("normal", "normal-more", "tiny"):
        register_quickly(settings, sources[name])
    promote(settings, 1)
    barrier = threading.Barrier(2)
    errors = []

    def race(version):
        try:
            barrier.wait()
            promote(settings, version, force=True, reason=f"race {version}", actor=f"user{version}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    moves = AuditLog(settings.audit_url).history(MODEL, "champion")
    assert len(moves) == 3
    first, second = moves[1], moves[2]
    assert {first.to_version, second.to_version} == {2, 3}
    assert first.from_version == 1 and second.from_version == first.to_version  # in order, nothing lost
    assert _champion(settings) == second.to_version


def test_a_failed_alias_move_leaves_no_audit_record(settings, sources, monkeypatch):
    register_quickly(settings, sources["normal"])
    from mlflow import MlflowClient

    def registry_down(*args, **kwargs):
        raise ConnectionError("registry unreachable")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", registry_down)
    with pytest.raises(ConnectionError):
        promote(settings, 1)
    monkeypatch.undo()
    assert _champion(settings) is None
    assert AuditLog(settings.audit_url).history(MODEL) == []
