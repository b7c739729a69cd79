"""The serving benchmark's load generators against a small HTTP server on 127.0.0.1: what they count and time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from benchmarks.http_load import closed_loop, open_loop, request_bytes

Answer = Callable[[bytes], Awaitable[bytes | None]]  # the request's head -> the answer, or None to hang up


def answer_with(status: int, delay: float = 0.0, close: bool = False) -> bytes:
    body = b'{"ok":true}'
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


async def serve(answer: Answer, peers: list[int] | None = None) -> tuple[asyncio.Server, str]:
    """A server answering each request with ``answer``; ``peers`` collects each request's client port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if peers is not None:
                    peers.append(writer.get_extra_info("peername")[1])
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                reply = await answer(head)
                if reply is None:
                    break
                writer.write(reply)
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/predict"


def run(answer: Answer, load: Callable[[str], Awaitable], peers: list[int] | None = None):  # noqa: ANN201
    async def main():  # noqa: ANN202
        server, url = await serve(answer, peers)
        try:
            return await load(url)
        finally:
            server.close()

    return uvloop.run(main())


def test_request_bytes_carry_the_body_and_headers() -> None:
    wire = request_bytes("http://127.0.0.1:8000/predict?x=1", b'{"a":1}', {"X-API-Key": "k"})
    head, body = wire.split(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"POST /predict?x=1 HTTP/1.1"
    assert b"Content-Length: 7" in head and b"X-API-Key: k" in head and b"Host: 127.0.0.1:8000" in head
    assert body == b'{"a":1}'


def test_the_open_loop_sends_on_schedule_and_records_every_answer() -> None:
    async def ok(head: bytes) -> bytes:
        return answer_with(200)

    result = run(ok, lambda url: open_loop(url, b"{}", [{}], rate=400, seconds=0.5, warmup_seconds=0.25))
    assert (result.sent, result.warmup) == (200, 100)
    assert len(result.latencies_ms) == len(result.lag_ms) == 200 and result.errors == 0
    assert 0 <= result.latencies_ms[0] <= result.latencies_ms[-1] < 1000
    assert result.client_cpu_ms > 0


def test_a_server_closing_each_connection_loses_no_request() -> None:
    """``Connection: close`` after every answer: the next request goes on a new connection, not the closing one."""

    async def closing(head: bytes) -> bytes:
        return answer_with(200, close=True)

    result = run(closing, lambda url: open_loop(url, b"{}", [{}], rate=200, seconds=0.4, warmup_seconds=0))
    assert result.sent == 80 and len(result.latencies_ms) == 80 and result.errors == 0


def test_a_light_load_rotates_through_the_open_connections() -> None:
    """At a rate one connection could carry, requests still spread over every open connection (which the service's
    workers accepted between them), not down the one freed last."""

    async def ok(head: bytes) -> bytes:
        return answer_with(200)

    peers: list[int] = []
    result = run(ok, lambda url: open_loop(url, b"{}", [{}], rate=100, seconds=0.4, warmup_seconds=0), peers)
    assert result.errors == 0 and len(peers) == 40
    assert len(set(peers)) >= 30  # 32 connections opened before the window: each used about once


def test_queueing_counts_from_the_scheduled_time() -> None:
    """One connection, answers taking 20 ms, 100 requests a second: each request waits in the client for the ones
    before it, and that wait counts (measured from the send, every latency would be about 20 ms)."""

    async def slow(head: bytes) -> bytes:
        await asyncio.sleep(0.02)
        return answer_with(200)

    result = run(
        slow, lambda url: open_loop(url, b"{}", [{}], rate=100, seconds=0.3, warmup_seconds=0, max_connections=1)
    )
    assert result.sent == 30 and result.errors == 0
    assert result.quantile(0.5) >= 100  # the 15th request: about 15 x 20 ms after its turn of 150 ms
    assert result.latencies_ms[-1] >= 250
    assert result.quantile(0.99, result.lag_ms) >= 250  # and the generator says it could not keep the schedule


def test_refusals_and_hang_ups_count_as_errors() -> None:
    async def mixed(head: bytes) -> bytes | None:
        if b"X-Key: hang-up" in head:
            return None
        return answer_with(503 if b"X-Key: refused" in head else 200)

    headers = [{"X-Key": "fine"}, {"X-Key": "refused"}, {"X-Key": "hang-up"}, {"X-Key": "fine"}]
    result = run(mixed, lambda url: open_loop(url, b"{}", headers, rate=200, seconds=0.4, warmup_seconds=0))
    assert result.sent == 80 and len(result.latencies_ms) == 80
    assert result.errors == 40  # every second request is refused or hung up on


@pytest.mark.parametrize("close", [False, True])
def test_the_closed_loop_keeps_its_clients_busy(close: bool) -> None:
    async def ok(head: bytes) -> bytes:
        return answer_with(200, close=close)  # a server closing each connection: the client reconnects

    result = run(ok, lambda url: closed_loop(url, b"{}", [{}], connections=4, seconds=0.3))
    assert result.requests > 100 and result.errors == 0
    assert result.rps == pytest.approx(result.requests / result.seconds)
    assert len(result.latencies_ms) == result.requests
