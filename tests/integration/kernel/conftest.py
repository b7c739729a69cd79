"""One PostgreSQL cluster for the kernel's store tests (migrations, the prediction log's batch journal)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import postgres_cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with postgres_cluster(()) as server:
        yield server
