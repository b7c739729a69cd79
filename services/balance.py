"""Keep-alive connections spread over the workers: a worker with many requests in progress sheds a connection.

BentoML's workers accept connections from one listening socket they share, and the worker that wakes first
takes every connection waiting (uvloop accepts until none is left). A client pool that opens its connections
together, as a load balancer, a sidecar or a benchmark does, can so put nearly all of them on one worker
(measured: 31, 31, 30, 28 of 32 connections on one of two workers in four of five tries; bentoml/BentoML#5426),
and keep-alive keeps it so for the connections' life: that worker queues at half the instance's capacity while
the other idles. A worker with more than ``rebalance_in_flight`` requests in progress therefore answers one of
them with ``Connection: close``, at most one every ``REBALANCE_INTERVAL_S``: the client opens a new connection
for its next request, which whichever worker is ready accepts. The answer itself is complete, so no client
retries anything. Workers that share the load evenly rarely reach the threshold; saturated ones shed one
connection each every ``REBALANCE_INTERVAL_S``, a reconnection (a fraction of a millisecond) among hundreds of
requests.
"""

from __future__ import annotations

import time

import bentoml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_core.settings import get_settings

REBALANCE_INTERVAL_S = 0.05  # a worker sheds at most one connection this often

SHED = bentoml.metrics.Counter(
    name="mlops_connections_shed_total",
    documentation="Keep-alive connections a busy worker closed after its answer, so the client reconnects",
)


def _closing(send: Send) -> Send:
    """``send`` with ``Connection: close`` added to the answer's headers."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)

    return closing


class ConnectionBalance:
    """ASGI middleware: counts this worker's requests in progress and sheds a connection when there are too many."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limit = get_settings().service.rebalance_in_flight
        self.in_flight = 0
        self.last_shed = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit:
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            if self.in_flight > self.limit and (now := time.monotonic()) - self.last_shed >= REBALANCE_INTERVAL_S:
                self.last_shed = now
                SHED.inc()
                send = _closing(send)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
