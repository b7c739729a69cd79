"""The service page a user opens: Swagger UI at /docs over /openapi.json, open without a key unless closed.

The screenshot is taken by Debian's headless chromium and kept in ``docs/service-page.png``; the rendered DOM
that chromium dumps is what the test checks, so a page that loads but shows no routes fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from mlops_core.settings import PROJECT_ROOT
from services.openapi import ENTITY_EXAMPLE
from tests.reliability.conftest import World, serve_champion
from tests.service.conftest import service_environment, start_service, stop_group

SCREENSHOT = PROJECT_ROOT / "docs" / "service-page.png"
ROUTES = ["/predict", "/predict_batch", "/predict_entity", "/feedback", "/admin/reload", "/readyz", "/openapi.json"]
CHROMIUM = shutil.which("chromium")
# Swagger UI renders in JavaScript after the load event: chromium's virtual clock lets it finish first.
RENDER_BUDGET_MS = "15000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    served = serve_champion(tmp_path_factory.mktemp("page"))
    try:
        yield served
    finally:
        stop_group(served.server.process)


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        f"--virtual-time-budget={RENDER_BUDGET_MS}",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120, check=True)


def test_root_leads_to_the_page_and_everything_it_needs_is_open(world: World):
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        root = anonymous.get("/")
        assert (root.status_code, root.headers["location"]) == (307, "/docs")
        page = anonymous.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/openapi.json" in page.text and "cdn" not in page.text.lower()
        for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
            assert anonymous.get(f"/docs/{asset}").status_code == 200, asset
        assert anonymous.get("/docs/../admin/reload").status_code in (401, 404)
        assert anonymous.post("/predict", json={}).status_code == 401  # the page opens nothing else
        document = anonymous.get("/openapi.json").json()
    assert set(ROUTES) <= set(document["paths"])
    assert all(op.get("summary") for path in document["paths"].values() for op in path.values())


def test_the_documented_examples_are_the_models_own_and_are_accepted(world: World):
    document = httpx.get(f"{world.server.url}/openapi.json", timeout=30).json()

    def example(path: str):
        return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]

    row = example("/predict")
    assert set(row) == set(document["components"]["schemas"]["Row"]["properties"])
    with world.server.client(world.keys["user"]) as api:
        assert api.post("/predict", json=row).status_code == 200
        batch = api.post("/predict_batch", json=example("/predict_batch"))
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 2
    assert example("/predict_entity") == {world.settings.data.entity_id: ENTITY_EXAMPLE}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_screenshot_of_the_page_shows_every_route(world: World, tmp_path: Path):
    dom = chromium(f"{world.server.url}/docs", tmp_path / "dom-profile", "--dump-dom").stdout
    for route in ROUTES:
        assert f'data-path="{route}"' in dom, route  # each operation's summary line, as Swagger UI renders it
    shot = tmp_path / "service-page.png"
    chromium(f"{world.server.url}/docs", tmp_path / "shot-profile", f"--screenshot={shot}", "--window-size=1280,1400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)


def test_a_setting_closes_the_page_and_the_document(world: World, tmp_path: Path):
    env = service_environment(
        world.settings.state_dir,
        MLOPS_SERVICE__WORKERS="1",
        MLOPS_SERVICE__OPEN_PATHS='["/livez", "/readyz"]',
        MLOPS_SERVICE__ACCESS_LOG="off",
    )
    closed = start_service(env, tmp_path / "closed.log")
    try:
        with httpx.Client(base_url=closed.url, timeout=30) as anonymous:
            for path in ("/", "/docs", "/docs/swagger-ui-bundle.js", "/openapi.json"):
                assert anonymous.get(path).status_code == 401, path
        with closed.client(world.keys["user"]) as api:
            assert api.get("/docs").status_code == 200
            assert api.get("/openapi.json").json()["paths"]["/docs"]["get"].get("security") != []
    finally:
        stop_group(closed.process)
