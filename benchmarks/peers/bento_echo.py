"""BentoML's own floor: the echo app mounted the way the project's service mounts its routes, with the same
number of workers and tracing skipped for the route, ``bentoml serve bento_echo:EchoService``."""

import os

import bentoml
from echo import app


@bentoml.service(
    workers=int(os.environ.get("BENCH_WORKERS", "2")),
    http={"host": "127.0.0.1", "port": int(os.environ.get("BENCH_PORT", "3000"))},
    tracing={"excluded_urls": "echo"},
)
@bentoml.asgi_app(app, path="/")
class EchoService:
    pass
