"""Flow-run names: each says what its run is, from the run's parameters and scheduled start."""

from datetime import UTC, datetime

import pytest

from flows.run_names import (
    ab_evaluation_name,
    feature_update_name,
    monitoring_name,
    promotion_name,
    rollback_name,
    training_name,
)

STARTED = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (training_name(STARTED, 5, None), "train 2026-11-30 window 5d"),
        (training_name(STARTED, None, None), "train 2026-11-30 window all"),
        (training_name(STARTED, 3, "drift (share 0.56)"), "retrain after drift (share 0.56)"),
        (monitoring_name(STARTED, None), "monitor 2026-11-30 05:00"),
        (monitoring_name(STARTED, 6.0), "monitor 2026-11-30 05:00 window 6h"),
        (ab_evaluation_name(STARTED, None), "ab-evaluate 2026-11-30 05:00"),
        (ab_evaluation_name(STARTED, True), "ab-evaluate 2026-11-30 05:00 (acting)"),
        (ab_evaluation_name(STARTED, False), "ab-evaluate 2026-11-30 05:00 (recommending)"),
        (promotion_name(3, False, None), "promote v3"),
        (promotion_name(3, True, "challenger"), "force-promote v3 to challenger"),
        (rollback_name(None), "rollback to the previous champion"),
        (rollback_name(2), "rollback to v2"),
        (feature_update_name([{"applicant_id": 7}]), "update 1 entity"),
        (feature_update_name([{"applicant_id": 7}, {"applicant_id": 8}]), "update 2 entities"),
    ],
)
def test_run_names(name, expected):
    assert name == expected
