"""An open-loop load generator: requests leave on a fixed schedule whether or not earlier ones were answered.

A closed loop (N clients, each waiting for its answer before the next request) slows down with the server and
so never sees a queue: its latency percentiles describe a load the server chose. Here request ``i`` is due at
``start + i / rate``; its latency runs from that scheduled time, so time spent queued (in the client's
connection pool, the kernel's backlog or the server) counts, as it does for a caller in production. The
generator's own lag (actual send time minus the schedule) is reported beside, so a client that could not keep
the schedule shows instead of passing for a fast server.

    from benchmarks.open_loop import open_loop
    result = asyncio.run(open_loop(url, body, headers, rate=400, seconds=10))
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    warmup: int  # requests sent during the warm-up, not recorded
    errors: int
    seconds: float
    latencies_ms: list[float]  # sorted, from each request's scheduled send time
    lag_ms: list[float]  # sorted, actual send minus scheduled send

    def quantile(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies_ms if values is None else values
        if not values:
            return float("nan")
        return values[min(int(q * len(values)), len(values) - 1)]

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.seconds


async def open_loop(
    url: str,
    body: bytes,
    headers: list[dict[str, str]],
    *,
    rate: float,
    seconds: float,
    warmup_seconds: float = 1.0,
    max_connections: int = 256,
    timeout: float = 30.0,
) -> OpenLoopResult:
    """Send ``rate`` requests per second for ``warmup_seconds`` (not recorded) then ``seconds``; request ``i``
    carries ``headers[i % len(headers)]``."""
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=max_connections)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    common = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=common, timeout=client_timeout) as session:

        async def one(index: int, due: float, record: bool) -> None:
            nonlocal errors
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers[index % len(headers)]) as response:
                    await response.read()
                    failed = response.status != 200
            except (aiohttp.ClientError, TimeoutError):
                failed = True
            if record:
                latencies.append((time.perf_counter() - due) * 1000)
                lags.append((sent - due) * 1000)
                errors += failed

        total = int((warmup_seconds + seconds) * rate)
        warmup = int(warmup_seconds * rate)
        interval = 1.0 / rate
        start = time.perf_counter() + 0.05
        tasks = []
        for index in range(total):
            due = start + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due, index >= warmup)))
        await asyncio.gather(*tasks)
    latencies.sort()
    lags.sort()
    return OpenLoopResult(rate, total - warmup, warmup, errors, seconds, latencies, lags)
