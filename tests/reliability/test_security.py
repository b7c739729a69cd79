"""Probes an attacker would send: no key, a revoked key, a key in the wrong place, path traversal, oversized
and hostile bodies. Each is refused with a JSON error and written to the security event log; afterwards no
raw key appears in any file the servers and the project wrote."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlops_core import security_log
from mlops_core.security_log import read_security_events
from tests.reliability.conftest import World
from tests.service.conftest import wait_until

pytestmark = pytest.mark.slow
ENDPOINTS = [
    ("POST", "/predict"),
    ("POST", "/predict_batch"),
    ("POST", "/predict_entity"),
    ("POST", "/feedback"),
    ("POST", "/admin/reload"),
    ("GET", "/docs.json"),
]  # /, /docs (with its assets) and /openapi.json are open by default: tests/service/test_service_page.py
TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static_content/../../../../etc/passwd",
    "/docs.json/..%2f..%2f..%2fetc%2fpasswd",
    "/predict/../admin/reload",
    "/docs/../../../../etc/passwd",
    "/docs/%2e%2e/%2e%2e/etc/passwd",
    "/docs/swagger-ui.css/../../admin/reload",
    "/..;/..;/etc/passwd",
]


def raw_request(world: World, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """One request exactly as written: no client-side path normalisation, no added headers."""
    address = urlsplit(world.server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def refused(status: int, body: bytes, expected: set[int]) -> bool:
    return status in expected and isinstance(json.loads(body)["detail"], list)


def test_every_probe_is_refused_and_logged_and_no_key_leaks(world: World, feature_rows, figures) -> None:
    settings = world.settings
    revoked_id, revoked = world.store.create("leaver")
    user = world.keys["user"]
    assert raw_request(world, "POST", "/predict", {"X-API-Key": revoked, **_json()}, _body(feature_rows[0]))[0] == 200
    assert world.store.revoke(revoked_id)
    time.sleep(2.5)  # the service re-reads the key store every 2 s
    probes: list[
        tuple[str, str, dict[str, str], bytes, set[int], str]
    ] = []  # method, path, headers, body, status, event

    row = _body(feature_rows[0])
    for method, path in ENDPOINTS:
        body = row if method == "POST" else b""
        probes += [
            (method, path, {}, body, {401}, security_log.MISSING_KEY),
            (method, path, {"X-API-Key": revoked}, body, {401}, security_log.INVALID_KEY),
            (method, path, {"Authorization": f"Bearer {revoked}"}, body, {401}, security_log.INVALID_KEY),
            (method, path, {"X-Api-Token": user}, body, {401}, security_log.MISSING_KEY),
            (method, path, {"Authorization": user}, body, {401}, security_log.MISSING_KEY),
            (method, path, {"Authorization": f"Basic {user}"}, body, {401}, security_log.MISSING_KEY),
            (method, path, {"Cookie": f"api_key={user}"}, body, {401}, security_log.MISSING_KEY),
            (method, f"{path}?api_key={user}", {}, body, {401}, security_log.MISSING_KEY),
        ]
    for path in TRAVERSALS:
        probes += [
            ("GET", path, {}, b"", {401}, security_log.MISSING_KEY),
            ("GET", path, {"X-API-Key": user}, b"", {404}, security_log.NOT_FOUND),
            ("POST", path, {"X-API-Key": user}, row, {404, 405}, None),
        ]
    limit = settings.service.max_body_bytes
    hostile = [
        (b'{"a": "' + b"x" * limit + b'"}', 413),  # declared too large
        (b"[" * 100_000 + b"]" * 100_000, 400),  # nesting deeper than the parser's recursion limit
        (b'{"age": ' + b"9" * 5000 + b"}", 400),  # an integer beyond Python's conversion limit
    ]
    for body, status in hostile:
        probes.append(("POST", "/predict", {"X-API-Key": user}, body, {status}, security_log.INVALID_INPUT))
    probes.append(("POST", "/predict", {}, b"x" * (limit + 1), {401}, security_log.MISSING_KEY))
    probes.append(("POST", "/predict_batch", {"X-API-Key": user}, _body({"rows": [feature_rows[0]] * 51}), {422}, "invalid_input"))  # fmt: skip

    answers = []
    for index, (method, path, headers, body, expected, _) in enumerate(probes):
        agent = {"User-Agent": f"probe-{index}"}
        status, content = raw_request(world, method, path, {**headers, **agent, **_json()}, body)
        assert b"root:" not in content
        answers.append((status, content, expected))
    chunked_status = _send_chunked(world, user, limit + 4096)
    wrong = [(probes[i][:2], probes[i][2], s) for i, (s, c, e) in enumerate(answers) if not refused(s, c, e)]
    assert not wrong, wrong[:5]
    assert chunked_status == 413

    agents = [f"probe-{i}" for i in range(len(probes))] + ["probe-chunked"]
    missing: list[str] = []

    def logged():
        events = read_security_events(settings.security_log_url)
        found = dict(zip(events["user_agent"], events["event_type"], strict=True))
        missing[:] = [a for a in agents if a not in found]
        return None if missing else found

    try:
        events = wait_until(logged, 30, "every probe in the security log")
    except TimeoutError:
        raise AssertionError(
            f"not in the security log: {[probes[int(a[6:])][:2] if a[6:].isdigit() else a for a in missing]}"
        ) from None
    routing = {404: security_log.NOT_FOUND, 405: security_log.METHOD_NOT_ALLOWED}
    expected_events = [p[5] or routing[answers[i][0]] for i, p in enumerate(probes)]
    mislogged = [
        (p[:2], events[f"probe-{i}"]) for i, p in enumerate(probes) if events[f"probe-{i}"] != expected_events[i]
    ]
    assert not mislogged and events["probe-chunked"] == security_log.INVALID_INPUT, mislogged[:5]

    keys = [*world.keys.values(), revoked]
    leaks = _files_containing(world.server.log.parent, keys)
    figures["security probes"] = {
        "probes": len(probes) + 1,
        "refused": len(answers) - len(wrong) + (chunked_status == 413),
        "logged": len(probes) - len(mislogged) + (events["probe-chunked"] == security_log.INVALID_INPUT),
        "files_scanned": sum(1 for p in world.server.log.parent.rglob("*") if p.is_file()),
        "files_with_a_key": len(leaks),
    }
    assert not leaks, f"raw keys found in {leaks}"


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


def _send_chunked(world: World, key: str, size: int) -> int:
    """A body with no declared length, streamed past the limit."""
    address = urlsplit(world.server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        chunks = (b'{"a": "' + b"x" * 1024 for _ in range(size // 1024))
        connection.request(
            "POST",
            "/predict",
            body=chunks,
            headers={"X-API-Key": key, "User-Agent": "probe-chunked", **_json()},
            encode_chunked=True,
        )
        return connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return 413  # the service answered and closed before the whole body was sent
    finally:
        connection.close()


def _files_containing(root: Path, secrets: list[str]) -> list[str]:
    """Every file under ``root`` (logs, databases, BentoML's home) holding one of ``secrets`` verbatim."""
    needles = [s.encode() for s in secrets]
    return [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]
