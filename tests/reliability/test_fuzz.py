"""Fuzzing the data-plane routes from the OpenAPI document the service publishes (schemathesis).

Positive and negative cases (valid rows, wrong types, missing and unknown fields, broken bodies) for every
operation: no answer may be a 5xx, and every answer must match the documented status, content type and schema.
Each operation's schemathesis strategy is driven by Hypothesis here: schemathesis 4.32.5's own pytest
integration (``schemathesis.pytest.from_fixture``) fails under pytest 9 ('Function' object has no attribute
'_nodeid').
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from tests.reliability.conftest import World, scaled

pytestmark = pytest.mark.slow
OPERATIONS = [
    ("POST", "/predict"),
    ("POST", "/predict_batch"),
    ("POST", "/predict_entity"),  # over the applicants the world put in the online feature store
    ("POST", "/feedback"),
    ("POST", "/admin/reload"),
    ("GET", "/readyz"),
]
CASES_PER_OPERATION = scaled(340)  # reload and readiness take few distinct inputs; the bodies many
MIN_CASES = scaled(1000)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_schema(world: World):
    """The document the service publishes, fetched as a client would (with a key)."""
    schema = schemathesis.openapi.from_url(
        f"{world.server.url}/openapi.json", headers={"X-API-Key": world.keys["admin"]}, timeout=30
    )
    assert {path for _, path in OPERATIONS} <= set(schema.raw_schema["paths"])
    return schema


@pytest.fixture(scope="module")
def fuzz_counts(figures) -> dict[str, int]:
    counts = figures.setdefault("fuzz (schemathesis)", {"operations": 0, "cases": 0, "5xx": 0, "non_conforming": 0})
    yield counts
    assert counts["operations"] < len(OPERATIONS) or counts["cases"] >= MIN_CASES, counts


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_answer_is_documented_and_never_a_server_error(method, path, api_schema, world: World, fuzz_counts):
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    key = {"X-API-Key": world.keys["admin"]}
    failures: list[str] = []

    @given(case=cases)
    @settings(
        max_examples=CASES_PER_OPERATION, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
    )  # fmt: skip
    def call(case) -> None:
        fuzz_counts["cases"] += 1
        response = case.call(headers=key, timeout=30)
        if response.status_code >= 500:
            fuzz_counts["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as exc:
            fuzz_counts["non_conforming"] += 1
            failures.append(f"{case.body!r:.300}: {exc}")

    call()
    fuzz_counts["operations"] += 1
    assert not failures, f"{len(failures)} failing cases; first:\n" + "\n".join(failures[:3])
