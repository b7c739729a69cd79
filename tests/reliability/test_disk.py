"""The service's state directory full: clear 503 answers, nothing acknowledged lost, no corruption.

The service directory (prediction and security logs, keys) and the rate-limit store are small tmpfs mounts,
each filled with a file in turn: the real condition, which chmod cannot give a root process. Mounting needs CAP_SYS_ADMIN (these
containers run as root with it); without it the tests are skipped, saying so. A read-only remount is refused
by the kernel while the service holds its logs open for writing (EBUSY), so read-only is not simulated.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import World, serve_champion
from tests.reliability.test_faults import prediction_log_is_whole
from tests.service.conftest import stop_group

pytestmark = pytest.mark.slow
SIZE = "16m"


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def small_filesystem(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"no small filesystem can be mounted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory) -> Iterator[tuple[World, Path, Path]]:
    """A service whose logs and keys are on one small tmpfs and its rate-limit store on another, each to fill."""
    root = tmp_path_factory.mktemp("disk")
    with small_filesystem(root / "state" / "service") as service_dir, small_filesystem(root / "limits") as limits:
        world = serve_champion(root, MLOPS_SERVICE__RATE_LIMIT_STORE=str(limits / "ratelimit.db"))
        try:
            yield world, service_dir, limits
        finally:
            stop_group(world.server.process)


def send(world: World, rows: list[dict]) -> list[httpx.Response]:
    with httpx.Client(base_url=world.server.url, headers={"X-API-Key": world.keys["user"]}, timeout=10) as client:
        return [client.post("/predict", json=row) for row in rows]


def check_refusals(responses: list[httpx.Response], error: str = "prediction_log_unavailable") -> tuple[list[str], int]:
    """Acknowledged ids and the number of clear 503s; anything else fails the test."""
    acknowledged, unavailable = [], 0
    for response in responses:
        if response.status_code == 200:
            acknowledged.append(response.json()["prediction_id"])
            continue
        assert response.status_code == 503, response.text
        assert response.json()["error"] == error and response.headers["retry-after"], response.text
        unavailable += 1
    return acknowledged, unavailable


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    try:
        out = filler.open("wb")
    except OSError as exc:  # full before the filler: name what filled it
        usage = subprocess.run(["du", "-ab", str(directory)], capture_output=True, text=True, check=False).stdout
        raise AssertionError(f"{directory} is full before it is filled ({exc}):\n{usage}") from exc
    with out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def logged_ids(world: World) -> set[str]:
    from mlops_core.prediction_log import read_predictions

    return set(read_predictions(world.settings.prediction_log_url)["prediction_id"])


def test_disk_full_refuses_clearly_and_recovers(small_disk, feature_rows, figures) -> None:
    world, service_dir, _ = small_disk
    before, _ = check_refusals(send(world, feature_rows[:10]))
    assert len(before) == 10
    filler = fill(service_dir)
    during, unavailable = check_refusals(send(world, feature_rows[:30]))
    filler.unlink()
    after, _ = check_refusals(send(world, feature_rows[:10]))
    rows = prediction_log_is_whole(world)
    acknowledged = set(before + during + after)
    figures["fault: disk full"] = {"acknowledged": len(acknowledged), "refused 503": unavailable, "log rows": rows}
    assert unavailable > 0 and len(after) == 10
    assert acknowledged <= logged_ids(world)


def test_full_rate_limit_store_refuses_clearly_and_recovers(small_disk, feature_rows, figures) -> None:
    world, _, limits = small_disk
    filler = fill(limits)
    during, unavailable = check_refusals(send(world, feature_rows[:20]), "rate_limit_store_unavailable")
    filler.unlink()
    after, _ = check_refusals(send(world, feature_rows[:10]))
    figures["fault: rate-limit store full"] = {"acknowledged": len(during) + len(after), "refused 503": unavailable}
    assert unavailable > 0 and len(after) == 10
    assert set(during + after) <= logged_ids(world)
