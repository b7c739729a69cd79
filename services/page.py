"""The service page: Swagger UI at ``/docs`` over the service's own ``/openapi.json``, and ``/`` sent there.

BentoML's index page at ``/`` shows BentoML's ``/docs.json``, which knows nothing of the mounted routes, so a
user opening the service's address saw either that or a 401. The Swagger UI files come from the bentoml
package itself (it ships them for its own index page): nothing is fetched from a CDN, so the page works offline
and shows exactly the version installed with the service.
"""

from __future__ import annotations

import mimetypes
from importlib.resources import files
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

DOCS_PATH = "/docs"
ASSET_PREFIX = DOCS_PATH + "/"
# The Swagger UI distribution bundled with BentoML, served from disk as it is installed.
SWAGGER_UI_DIR = Path(str(files("bentoml"))) / "_internal" / "server" / "static_content"
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")

PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>mlops prediction service</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css" />
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      docExpansion: "list",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "BaseLayout",
    });
  </script>
</body>
</html>
"""


def is_page_path(path: str) -> bool:
    """The page and its assets, which are open exactly when ``/docs`` is an open path."""
    return path == DOCS_PATH or (path.startswith(ASSET_PREFIX) and path[len(ASSET_PREFIX) :] in ASSETS)


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ServicePage:
    """Answers GET ``/`` (a redirect to ``/docs``), ``/docs`` and the Swagger UI assets; passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.assets = {name: (SWAGGER_UI_DIR / name).read_bytes() for name in ASSETS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not (path == "/" or is_page_path(path)):
            await self.app(scope, receive, send)
            return
        if path == "/":
            await _send(send, 307, b"", {"location": DOCS_PATH})
        elif path == DOCS_PATH:
            await _send(send, 200, PAGE, {"content-type": "text/html; charset=utf-8"})
        else:
            name = path[len(ASSET_PREFIX) :]
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            await _send(send, 200, self.assets[name], {"content-type": kind, "cache-control": "max-age=3600"})
