"""The access log: a burst of answered, refused and unknown requests appears line for line, without keys or bodies."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest

from tests.reliability.conftest import World
from tests.service.conftest import wait_until

pytestmark = pytest.mark.slow
CONNECTIONS = 6
MARKER = 123_456_789.0  # a feature value that must not reach the log


def lines(world: World) -> list[dict]:
    path = world.settings.access_log_file
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def burst(world: World, key: str, row: dict) -> list[tuple[str, str, int]]:
    """Requests of every kind, sent concurrently; returns (method, path, status) as the client saw them."""
    too_many = {"rows": [row] * (world.settings.service.max_batch_rows + 1)}
    requests = [
        *[("POST", "/predict", {"X-API-Key": key}, row)] * 30,
        *[("POST", "/predict", {"X-API-Key": key}, {**row, "age": MARKER, "nonsense": 1})] * 10,
        *[("POST", "/predict", {}, row)] * 10,
        *[("POST", "/predict_batch", {"X-API-Key": key}, too_many)] * 5,
        *[("GET", "/no/such/route", {"X-API-Key": key}, None)] * 5,
    ]
    gate = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(base_url=world.server.url, timeout=30) as client:

        async def send(method: str, path: str, headers: dict, body: dict | None) -> tuple[str, str, int]:
            async with gate:
                response = await client.request(method, path, headers=headers, json=body)
            if response.status_code >= 500:  # the reason, for the assertion's message
                print(f"{method} {path}: {response.status_code} {response.text}")
            return method, path, response.status_code

        return await asyncio.gather(*(send(*request) for request in requests))


def test_a_burst_is_logged_line_for_line(world: World, feature_rows) -> None:
    key_id, key = world.store.create("access log", rate_limit=10_000_000)
    time.sleep(0.5)  # lines of earlier tests are written
    before = len(lines(world))
    answered = asyncio.run(burst(world, key, feature_rows[0]))
    assert Counter(status for *_, status in answered) == {200: 30, 422: 15, 401: 10, 404: 5}, answered

    new = wait_until(lambda: fresh if len(fresh := lines(world)[before:]) >= len(answered) else None, 30, "every line")
    assert len(new) == len(answered), new[len(answered) :]
    assert Counter((r["method"], r["path"], r["status"]) for r in new) == Counter(answered)
    assert {r["key_id"] for r in new if r["status"] != 401} == {key_id}
    assert {r["key_id"] for r in new if r["status"] == 401} == {None}
    assert Counter(r["error"] for r in new) == {
        None: 30,
        "invalid_input": 10,
        "batch_too_large": 5,
        "unauthorized": 10,
        "not_found": 5,
    }
    assert {r["worker"] for r in new} <= {1, 2} and all(r["pid"] > 0 and r["ms"] >= 0 for r in new)
    text = world.settings.access_log_file.read_text()
    assert key not in text and str(MARKER) not in text and "nonsense" not in text
