"""The blue-green switch's answer checks, on answers as the service writes them."""

from __future__ import annotations

import httpx
import pytest

from tooling.bluegreen import answer_problem, percentile

GOOD = {"variant": "champion", "model_version": 7, "prediction": 1, "probabilities": {"0": 0.25, "1": 0.75}}


def answer(body: dict, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_a_valid_answer_of_the_version_passes():
    assert answer_problem(answer(GOOD), 7) is None


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"error": "not_ready"}, 503, "HTTP 503"),
        ({**GOOD, "model_version": 6}, 200, "answered by version 6, not 7"),
        ({**GOOD, "probabilities": {"0": 0.5, "1": 0.6}}, 200, "do not sum to 1"),
        ({**GOOD, "probabilities": {"0": -0.25, "1": 1.25}}, 200, "are not probabilities"),
        ({**GOOD, "probabilities": {}}, 200, "are not probabilities"),
        ({**GOOD, "prediction": 2}, 200, "none of the classes"),
    ],
)
def test_a_wrong_answer_names_its_problem(body, status, problem):
    assert problem in answer_problem(answer(body, status), 7)


def test_a_challenger_answer_may_come_from_another_version():
    assert answer_problem(answer({**GOOD, "variant": "challenger", "model_version": 8}), 7) is None


def test_percentile_is_a_measured_value():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile([3.0], 0.95) == 3.0
