"""HTTP load generators for the serving benchmark: an open loop (a fixed schedule) and a closed loop (N clients).

In the open loop requests leave on a fixed schedule whether or not earlier ones were answered. A closed loop (N clients, each waiting for its answer before the next request) slows down with the server and
so never sees a queue: its latency percentiles describe a load the server chose. Here request ``i`` is due at
``start + i / rate``; its latency runs from that scheduled time to the moment its whole answer arrived, so time
spent queued (waiting for a free connection, in the kernel's backlog or in the server) counts, as it does for a
caller in production. The generator's own lag (actual send time minus the schedule) is reported beside, so a
client that could not keep the schedule shows instead of passing for a fast server.

The generator shares the machine's cores with the server it measures, so it is kept cheap, as load generators
written for this are (wrk2 in C): keep-alive HTTP/1.1 connections opened before the window, each request's bytes
built once per header set, answers parsed by ``httptools`` (the C parser uvicorn serves with) in the
connection's callback, which is also where the answer's time is taken; no task or context manager per request.
Against an echo server on this 2-core machine it spends 0.09 to 0.17 ms of CPU per request where an aiohttp
client spent 0.21 to 0.36, and its p99 there is 3 to 5 ms where aiohttp's was 7.5 to 9 (``client_cpu_ms`` reports
it in every run). The closed loop, which measures capacity, uses the same connections and parser, so capacity
and the open loop's shares of it are measured with one instrument.

    from benchmarks.http_load import closed_loop, open_loop
    capacity = uvloop.run(closed_loop(url, body, headers, connections=32, seconds=8))
    result = uvloop.run(open_loop(url, body, headers, rate=capacity.rps / 2, seconds=10))
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# Connections opened before the window: more than a fixed load at a few milliseconds per answer keeps in flight,
# so connecting (a handshake in the measured window) happens only when the server falls behind.
WARM_CONNECTIONS = 32
# uvloop's timers count whole milliseconds: a shorter sleep returns at once, and waiting out a gap below 1 ms that
# way spins, taking a quarter of a core from the server being measured (0.24 against 0.12 ms of generator CPU per
# request at 700 req/s). So the generator sleeps at least this long and sends what fell due meanwhile together:
# up to a millisecond late, which the lag column shows and the latency, counted from the schedule, includes.
MIN_SLEEP_S = 0.001


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    warmup: int  # requests sent during the warm-up, not recorded
    errors: int  # recorded requests answered other than 200, or not answered (connection lost, timeout)
    seconds: float
    latencies_ms: list[float]  # sorted, from each request's scheduled send time
    lag_ms: list[float]  # sorted, actual send minus scheduled send
    client_cpu_ms: float = float("nan")  # the generator's CPU per request sent

    def quantile(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies_ms if values is None else values
        if not values:
            return float("nan")
        return values[min(int(q * len(values)), len(values) - 1)]

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.seconds


def request_bytes(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST of ``body`` (JSON) to ``url``, keep-alive, as it goes on the wire."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Generator:
    """The schedule's state: idle connections, requests waiting for one, and what was measured."""

    def __init__(self, url: str, requests: list[bytes], total: int, warmup: int, max_connections: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.requests = requests
        self.total = total
        self.warmup = warmup
        self.max_connections = max_connections
        self.idle: deque[_Connection] = deque()
        self.waiting: deque[tuple[int, float]] = deque()  # (index, due) of requests sent when a connection frees
        self.in_flight: dict[_Connection, tuple[int, float]] = {}
        self.connections = 0
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.finished = 0
        self.all_done = asyncio.get_running_loop().create_future()

    def open_connection(self) -> None:
        """One more connection, once it is open it takes the oldest waiting request (bounded by
        ``max_connections``)."""
        if self.connections < self.max_connections:
            self.connections += 1
            asyncio.get_running_loop().create_task(self.connect())

    def send(self, index: int, due: float) -> None:
        if self.idle:
            # The connection idle longest, not the one freed last: a pool that reuses its most recent connection
            # (aiohttp's, urllib3's) sends a moderate load down the same few connections, which one worker of
            # the service accepted, and the other idles (CPU seconds of the two workers 4.74 and 0.24 at 400 req/s).
            # Rotating through the open connections spreads requests as many independent callers do.
            self._send_on(self.idle.popleft(), index, due)
            return
        self.waiting.append((index, due))
        self.open_connection()

    async def connect(self) -> None:
        try:
            await asyncio.get_running_loop().create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.connections -= 1
            if self.waiting:
                self.done(*self.waiting.popleft(), failed=True)

    def _send_on(self, connection: _Connection, index: int, due: float) -> None:
        self.in_flight[connection] = (index, due)
        if index >= self.warmup:
            self.lags.append((time.perf_counter() - due) * 1000)
        connection.transport.write(self.requests[index % len(self.requests)])

    def free(self, connection: _Connection) -> None:
        """A connection is open and idle: it takes the oldest waiting request, if any."""
        if self.waiting:
            self._send_on(connection, *self.waiting.popleft())
        else:
            self.idle.append(connection)

    def answered(self, connection: _Connection, status: int, *, reusable: bool) -> None:
        index, due = self.in_flight.pop(connection)
        self.done(index, due, failed=status != 200)
        if reusable:
            self.free(connection)

    def lost(self, connection: _Connection) -> None:
        self.connections -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection in self.in_flight:
            self.done(*self.in_flight.pop(connection), failed=True)
        if self.waiting:  # a server closing connections would otherwise leave them waiting for a new request
            self.open_connection()

    def done(self, index: int, due: float, *, failed: bool) -> None:
        if index >= self.warmup:
            self.latencies.append((time.perf_counter() - due) * 1000)
            self.errors += failed
        self.finished += 1
        if self.finished == self.total and not self.all_done.done():
            self.all_done.set_result(None)


class _HttpConnection(asyncio.Protocol):
    """A keep-alive connection whose answers httptools parses as they arrive; ``answered`` is called with each
    complete answer's status, and the connection closes when the server will not keep it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport
        self.parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:  # httptools' callback: the whole answer is in
        status, keep = self.parser.get_status_code(), self.parser.should_keep_alive()
        self.parser = httptools.HttpResponseParser(self)
        self.answered(status, keep)

    def answered(self, status: int, keep: bool) -> None:
        """Record the answer; ``keep``: the server keeps the connection open for another request."""
        raise NotImplementedError


class _Connection(_HttpConnection):
    """One open-loop connection with at most one request in flight."""

    def __init__(self, generator: _Generator) -> None:
        super().__init__()
        self.generator = generator

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.generator.free(self)

    def answered(self, status: int, keep: bool) -> None:
        self.generator.answered(self, status, reusable=keep)
        if not keep:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.lost(self)


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
    carries ``headers[i % len(headers)]``. Requests unanswered ``timeout`` seconds after the last one was due
    count as errors."""
    total = int((warmup_seconds + seconds) * rate)
    requests = [request_bytes(url, body, h) for h in headers]
    generator = _Generator(url, requests, total, int(warmup_seconds * rate), max_connections)
    for _ in range(min(WARM_CONNECTIONS, max_connections)):
        generator.connections += 1
        await generator.connect()
    cpu = time.process_time()
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    index = 0
    while index < total:
        now = time.perf_counter()
        while index < total and start + index * interval <= now:  # every request due by now, in order
            generator.send(index, start + index * interval)
            index += 1
        if index < total:
            await asyncio.sleep(max(start + index * interval - time.perf_counter(), MIN_SLEEP_S))
    try:
        await asyncio.wait_for(asyncio.shield(generator.all_done), timeout)
    except TimeoutError:
        for due_index, due in [*generator.in_flight.values(), *generator.waiting]:
            generator.done(due_index, due, failed=True)
    cpu_ms = (time.process_time() - cpu) * 1000 / total
    for connection in [*generator.idle, *generator.in_flight]:
        connection.transport.close()
    await asyncio.sleep(0)
    latencies, lags = sorted(generator.latencies), sorted(generator.lags)
    return OpenLoopResult(
        rate, total - generator.warmup, generator.warmup, generator.errors, seconds, latencies, lags, cpu_ms
    )


@dataclass
class ClosedLoopResult:
    requests: int  # answered in the window, errors included
    errors: int
    seconds: float
    latencies_ms: list[float]  # sorted, from each request's send time
    client_cpu_ms: float  # the generator's CPU per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


class _Client(_HttpConnection):
    """One closed-loop client: a keep-alive connection that sends its next request when the last one is answered."""

    def __init__(self, loop: _ClosedLoop, request: bytes) -> None:
        super().__init__()
        self.loop, self.request = loop, request
        self.sent = 0.0
        self.in_flight = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fire()

    def fire(self) -> None:
        self.sent, self.in_flight = time.perf_counter(), True
        self.transport.write(self.request)

    def answered(self, status: int, keep: bool) -> None:
        now = time.perf_counter()
        self.in_flight = False
        self.loop.record(now - self.sent, failed=status != 200)
        if keep and now < self.loop.deadline:
            self.fire()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:  # lost with a request in flight
            self.loop.record(time.perf_counter() - self.sent, failed=True)
        self.closed.set_result(None)


class _ClosedLoop:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.latencies: list[float] = []
        self.errors = 0

    def record(self, seconds: float, *, failed: bool) -> None:
        self.latencies.append(seconds * 1000)
        self.errors += failed

    async def client(self, host: str, port: int, request: bytes) -> None:
        """One client until the deadline, reconnecting when the server closes its connection."""
        running = asyncio.get_running_loop()
        while time.perf_counter() < self.deadline:
            try:
                _, client = await running.create_connection(lambda: _Client(self, request), host, port)
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.01)
                continue
            await client.closed


async def closed_loop(
    url: str, body: bytes, headers: list[dict[str, str]], *, connections: int, seconds: float
) -> ClosedLoopResult:
    """``connections`` clients, each sending its next request as soon as the last one is answered, for
    ``seconds``; client ``i`` sends ``headers[i % len(headers)]`` (its own API key where the server checks keys).
    Answers other than 200 count as errors."""
    parts = urlsplit(url)
    requests = [request_bytes(url, body, headers[i % len(headers)]) for i in range(connections)]
    cpu, began = time.process_time(), time.perf_counter()
    state = _ClosedLoop(began + seconds)
    await asyncio.gather(*(state.client(parts.hostname, parts.port or 80, request) for request in requests))
    elapsed = time.perf_counter() - began
    answered = max(len(state.latencies), 1)
    cpu_ms = (time.process_time() - cpu) * 1000 / answered
    return ClosedLoopResult(len(state.latencies), state.errors, elapsed, sorted(state.latencies), cpu_ms)
