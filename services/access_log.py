"""The access log: one JSON line per HTTP request, written by a thread so that no request waits for the disk.

A line holds the time the answer was complete, the worker (BentoML's worker index and the process id), method,
path (without the query string, where a misplaced key could sit), status, latency in ms, the id of the key that
passed the guard, and for an answer of 400 or more the ``error`` code of the project's JSON body (``status`` for
/readyz), so a burst of errors reads as, say, ``503 not_ready`` from one worker that had just started. Neither
keys nor request bodies are written. Status 0 means no answer left the routes and the guard: the request was
cancelled (BentoML's traffic timeout then answers 504) or the client went away.

The middleware only puts the line's time and fields on a queue; a writer thread makes the log records, formats
and writes them. (``Logger.info`` on the request's path cost about 0.1 ms a request, 8 % of a single-row
request's CPU: the record's creation looks up the caller's frame, thread and process names.) The thread wakes
every ``WRITE_INTERVAL_S`` and writes what is queued, rather than waking for each line: at a moderate request
rate, where requests rarely share a wake-up, a wake-up per line cost about 0.2 ms of CPU a request. Every
worker appends to the same file: one ``write`` per line in append mode, so lines of different workers do not
interleave; the file is reopened when log rotation moves it. It replaces BentoML's own access log, which writes
on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler
from typing import Any

import bentoml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_core.settings import Settings, get_settings

MAX_PATH = 500  # characters of a path kept: probes send very long ones
MAX_ERROR_BODY = 65_536  # bytes of an error body searched for its code; the project's errors are far smaller
LOGGER = "mlops.access"  # the records' logger name; they go to the access log's file or stream only
WRITE_INTERVAL_S = 0.1  # how long a line may wait in the queue for the writer thread


# A line's time (``time.time()``) and fields, as the middleware queues them.
Entry = tuple[float, dict[str, Any]]


class _Writer:
    """The thread that writes the queued lines through ``handler``, every ``WRITE_INTERVAL_S`` and once more when
    stopped."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.entries: queue.SimpleQueue[Entry] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.handler.close()

    def _run(self) -> None:
        while not self._stopping.wait(WRITE_INTERVAL_S):
            self._write_queued()
        self._write_queued()

    def _write_queued(self) -> None:
        while True:
            try:
                created, fields = self.entries.get_nowait()
            except queue.Empty:
                return
            record = {"name": LOGGER, "levelno": logging.INFO, "msg": fields, "created": created}
            self.handler.handle(logging.makeLogRecord(record))


class JsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json.dumps({"ts": ts, **record.msg})  # type: ignore[dict-item]


_lock = threading.Lock()
_writer: _Writer | None = None


def start(settings: Settings) -> bool:
    """Start this process's writer thread once, as the settings say; False when the access log is off."""
    global _writer
    mode = settings.service.access_log
    if mode == "off":
        return False
    with _lock:
        if _writer is None:
            if mode == "file":
                settings.access_log_file.parent.mkdir(parents=True, exist_ok=True)
                target: logging.Handler = WatchedFileHandler(settings.access_log_file, encoding="utf-8")
            else:
                target = logging.StreamHandler(sys.stderr)
            target.setFormatter(JsonLine())
            _writer = _Writer(target)
    return True


def stop() -> None:
    """Write what is queued, then stop the writer thread (the worker is shutting down)."""
    global _writer
    with _lock:
        if _writer is not None:
            _writer.stop()
            _writer = None


def error_code(body: bytes) -> str | None:
    """The ``error`` field of a JSON error body, or its ``status`` (/readyz), if it has one."""
    if len(body) > MAX_ERROR_BODY:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    error = (parsed.get("error") or parsed.get("status")) if isinstance(parsed, dict) else None
    return str(error)[:100] if error is not None else None


class AccessLog:
    """ASGI middleware: one access-log record per HTTP request, queued when the request is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.enabled = start(get_settings())
        self.pid = os.getpid()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, error, finished = 0, None, None

        async def observed(message: Message) -> None:
            nonlocal status, error, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if status >= 400 and error is None:
                    error = error_code(message.get("body", b""))
                if not message.get("more_body", False):
                    finished = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException as exc:
            error = error or type(exc).__name__
            raise
        finally:
            entry: dict[str, Any] = {
                "worker": bentoml.server_context.worker_index,
                "pid": self.pid,
                "method": scope["method"],
                "path": scope["path"][:MAX_PATH],
                "status": status,
                "ms": round(((finished or time.perf_counter()) - started) * 1000, 2),
                "key_id": scope.get("state", {}).get("key_id"),
                "error": error,
            }
            writer = _writer
            if writer is not None:
                writer.entries.put((time.time(), entry))
