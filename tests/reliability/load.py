"""A bounded load generator shared by the load and fault tests: N connections, every answer recorded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    """What the clients saw: statuses (0: no answer), acknowledged prediction ids, served versions."""

    statuses: Counter = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # requests without an answer, by exception
    refusals: Counter = field(default_factory=Counter)  # answers other than 200, by status and error code
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def error_code(response: httpx.Response) -> str:
    """The ``error`` field of the project's JSON errors; the start of the body for anything else."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return repr(response.text[:80])


async def _drive(
    url: str,
    key: str,
    rows: list[dict],
    connections: int,
    requests: int | None,
    stop: threading.Event,
    outcome: Outcome,
    fresh_connections: bool = False,
    pause: float = 0.0,
) -> Outcome:
    sent = 0
    # A new connection per request goes through accept() every time, so it reaches a worker as soon as that
    # worker listens; kept-alive connections stay with the workers that accepted them.
    headers = {"X-API-Key": key, **({"Connection": "close"} if fresh_connections else {})}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    started = time.perf_counter()

    async def worker(client: httpx.AsyncClient, index: int) -> None:
        nonlocal sent
        while not stop.is_set() and (requests is None or sent < requests):
            sent += 1
            if pause:
                await asyncio.sleep(pause)
            row = rows[(index + sent) % len(rows)]
            batch = sent % 10 == 0  # one request in ten is a batch of 5 rows
            try:
                if batch:
                    response = await client.post("/predict_batch", json={"rows": [row] * 5})
                else:
                    response = await client.post("/predict", json=row)
            except httpx.HTTPError as exc:
                outcome.statuses[0] += 1
                outcome.failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
                continue
            outcome.statuses[response.status_code] += 1
            if response.status_code == 200:
                answers = response.json()["predictions"] if batch else [response.json()]
                outcome.acknowledged.extend(a["prediction_id"] for a in answers)
                outcome.versions.update(a["model_version"] for a in answers)
            else:
                outcome.refusals[f"{response.status_code} {error_code(response)}"] += 1

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client, i) for i in range(connections)))
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_load(url: str, key: str, rows: list[dict], *, connections: int, requests: int) -> Outcome:
    """Send ``requests`` requests over ``connections`` concurrent connections and wait for every answer."""
    return asyncio.run(_drive(url, key, rows, connections, requests, threading.Event(), Outcome()))


class Background:
    """Load in a thread until stopped, for fault tests; ``outcome`` fills while it runs."""

    def __init__(
        self,
        url: str,
        key: str,
        rows: list[dict],
        connections: int = 8,
        *,
        fresh_connections: bool = False,
        pause: float = 0.0,
    ) -> None:
        """``pause``: seconds each connection waits before each request, to bound a load that runs for long."""
        self._stop = threading.Event()
        self.outcome = Outcome()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(
                _drive(url, key, rows, connections, None, self._stop, self.outcome, fresh_connections, pause)
            )
        )

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join(120)
