"""Assignment and challenger scoring as plain functions: stickiness, the share, and faults named by reason."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlops_core.registry import ServingMode
from services.inputs import FieldRule, columns_of, frame_of_columns
from services.variants import CHALLENGER, CHAMPION, ChallengerFault, assign, assignment_unit, challenger_scores


def test_the_unit_is_the_first_configured_identity_present():
    assert assignment_unit(["session", "key"], "s1", "k1") == "session:s1"
    assert assignment_unit(["session", "key"], None, "k1") == "key:k1"
    assert assignment_unit(["session"], None, "k1") is None
    assert assignment_unit([], "s1", "k1") is None


def test_assignment_is_sticky_follows_the_share_and_only_grows_with_it():
    ab = ServingMode("ab", 0.3)
    units = [f"session:{i}" for i in range(4000)]
    first = [assign(ab, u, "m:2") for u in units]
    assert first == [assign(ab, u, "m:2") for u in units]
    share = first.count(CHALLENGER) / len(units)
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / len(units)) ** 0.5
    wider = [assign(ServingMode("ab", 0.5), u, "m:2") for u in units]
    assert all(w == CHALLENGER for f, w in zip(first, wider, strict=True) if f == CHALLENGER)
    reshuffled = [assign(ab, u, "m:3") for u in units]
    assert reshuffled != first  # a new challenger version draws new groups
    assert {assign(ServingMode("shadow", 1.0), u, "m:2") for u in units[:50]} == {CHAMPION}
    assert {assign(ServingMode("champion", 1.0), u, "m:2") for u in units[:50]} == {CHAMPION}
    draws = [assign(ab, None, "m:2", random.Random(0).random) for _ in range(10)]
    assert set(draws) <= {CHAMPION, CHALLENGER}


class _Model:
    def __init__(self, rules, answer):
        self.rules, self.classes, self._answer = rules, [0, 1], answer

    def predict_columns(self, columns):
        return self._answer(frame_of_columns(columns, self.rules))


RULES = [FieldRule("age", "number", True), FieldRule("region", "string", False)]


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (None, "missing"),
        (_Model([*RULES, FieldRule("tenure", "number", True)], lambda r: np.full((len(r), 2), 0.5)), "schema"),
        (_Model(RULES, lambda r: 1 / 0), "error"),
        (_Model(RULES, lambda r: np.full((len(r), 2), np.nan)), "error"),
    ],
)
def test_a_challenger_fault_is_named(model, reason):
    with pytest.raises(ChallengerFault) as caught:
        challenger_scores(model, columns_of([{"age": 40.0, "region": "north"}], RULES))
    assert caught.value.reason == reason


def test_a_working_challenger_scores_rows_with_fewer_inputs():
    model = _Model(RULES[:1], lambda r: np.tile([0.2, 0.8], (len(r), 1)))
    assert challenger_scores(model, columns_of([{"age": 40.0, "region": "north"}], RULES)).shape == (1, 2)
