"""The loop's world alternates: the original data, then a shift, then back; what a loop left is read back."""

import pytest

from tooling.loop import DRIFT_SCENARIO, drifted_world, recorded_world

SHIFTED = {"scenario": DRIFT_SCENARIO, "drift_strength": 1.0}
ORIGINAL = {"scenario": "none"}


@pytest.mark.parametrize(
    ("recorded", "world"),
    [
        ({}, ORIGINAL),  # no loop ran yet
        (ORIGINAL, ORIGINAL),
        (SHIFTED, SHIFTED),
        ({"scenario": "covariate", "drift_strength": 2.0}, {"scenario": "covariate", "drift_strength": 2.0}),
        ({"drift_strength": 2.0}, {"scenario": "covariate", "drift_strength": 2.0}),  # a file of earlier loops
        ({"drift_strength": 0.0}, ORIGINAL),
    ],
)
def test_the_recorded_world_is_read_back(recorded, world) -> None:
    assert recorded_world(recorded) == world


@pytest.mark.parametrize(
    ("world", "strength", "after"),
    [
        (ORIGINAL, 1.0, SHIFTED),
        (ORIGINAL, 0.5, {"scenario": DRIFT_SCENARIO, "drift_strength": 0.5}),
        (SHIFTED, 1.0, ORIGINAL),
        ({"scenario": "covariate", "drift_strength": 2.0}, 1.0, ORIGINAL),
    ],
)
def test_the_drift_shifts_the_original_world_and_returns_from_a_shifted_one(world, strength, after) -> None:
    assert drifted_world(world, strength) == after
