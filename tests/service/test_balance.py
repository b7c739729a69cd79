"""A worker with more requests in progress than ``rebalance_in_flight`` sheds one keep-alive connection: its answer
carries ``Connection: close`` and uvicorn closes the connection after it; at most one per interval."""

from __future__ import annotations

import asyncio

import uvicorn

from services import balance
from services.balance import ConnectionBalance
from tooling.processes import free_port

LIMIT = 8  # the default of ``rebalance_in_flight``


async def answer_when(released: asyncio.Event, entered: list[int], scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    entered.append(1)
    await released.wait()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def one_request(port: int) -> tuple[bytes, bool]:
    """The answer's head, and whether the server closed the connection after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    try:
        closed = await asyncio.wait_for(reader.read(1), 0.5) == b""
    except TimeoutError:
        closed = False
    writer.close()
    return head.lower(), closed


async def requests_in_progress_at_once(count: int) -> list[tuple[bytes, bool]]:
    released, entered = asyncio.Event(), []
    app = ConnectionBalance(lambda scope, receive, send: answer_when(released, entered, scope, receive, send))
    assert app.limit == LIMIT
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        clients = [asyncio.create_task(one_request(port)) for _ in range(count)]
        while len(entered) < count:
            await asyncio.sleep(0.01)
        released.set()
        return await asyncio.gather(*clients)
    finally:
        server.should_exit = True
        await serving


def test_a_worker_at_its_limit_keeps_every_connection() -> None:
    answers = asyncio.run(requests_in_progress_at_once(LIMIT))
    assert all(b"connection: close" not in head and not closed for head, closed in answers)


def test_a_worker_over_its_limit_sheds_one_connection_per_interval() -> None:
    shed_before = balance.SHED._value.get()
    answers = asyncio.run(requests_in_progress_at_once(LIMIT + 4))
    shed = [(head, closed) for head, closed in answers if b"connection: close" in head]
    assert len(shed) == 1 and shed[0][1]  # only the first over the limit: the others came within the interval
    assert all(not closed for head, closed in answers if (head, closed) not in shed)
    assert balance.SHED._value.get() == shed_before + 1
