"""What stands in front of every route: API keys, per-key rate limits, the security event log.

The checks run as ASGI middleware on the whole BentoML app, so they also cover BentoML's own routes (the
docs, and /metrics when it is not configured open). Rate limits are pyrate-limiter's GCRA (a key may send its
whole limit at once, then one request per window/limit): its state lives in a SQLite file, so a key's limit holds
across all worker processes on the machine; with ``MLOPS_SERVICE__RATE_LIMIT_URL`` it lives in Redis and the
limit holds across every instance.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrate_limiter import GCRA, Duration, Rate, RateItem, RedisStateStore, StateBucket, WallClock
from pyrate_limiter.abstracts.algorithm import Decision, State, StateAlgorithm
from pyrate_limiter.abstracts.store import StateStore
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from mlops_core import api_keys, db, migrations, redis_store, security_log
from mlops_core.api_keys import ActiveKey, KeyStore
from mlops_core.prediction_log import GroupWriter, utc_now
from mlops_core.settings import Settings
from services import page

KEY_REFRESH_SECONDS = 2.0
UNSEEN_KEY_RECHECK_SECONDS = 0.25
RATE_LIMIT_KEY_PREFIX = "mlops:rate-limit:"
logger = logging.getLogger("mlops.service.guard")


class KeyCache:
    """Active key hashes, re-read from the key store when it changed (revocations apply without restart).

    A SQLite file is watched with a ``stat`` and re-read every few seconds; a server database (keys shared by
    every instance) is asked for its cheap ``version()`` every few seconds and re-read only when that moved.
    """

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._keys: dict[str, ActiveKey] = {}
        self._checked_at = -math.inf
        self._version: object = None
        self._lock = threading.Lock()

    def _file_version(self) -> tuple[int, int]:
        """The store file's mtime and size: a stat, far cheaper than a read, and it changes with every write."""
        assert self._store.file is not None
        try:
            stat = self._store.file.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def active(self, key_id: str | None = None) -> dict[str, ActiveKey]:
        """The active keys; an id not seen yet re-checks at once when the store file changed (a key just
        created), and otherwise at most 4 times a second, so unknown keys cannot turn into a flood of reads."""
        age = time.monotonic() - self._checked_at
        unseen = key_id is not None and key_id not in self._keys
        local = self._store.file is not None
        if age > KEY_REFRESH_SECONDS or (
            unseen and (age > UNSEEN_KEY_RECHECK_SECONDS or (local and self._file_version() != self._version))
        ):
            with self._lock:
                try:
                    version = self._file_version() if local else self._store.version()
                    # The file's stat may miss two writes within one clock tick: a file is re-read every time.
                    if local or version != self._version:
                        self._keys = self._store.active()
                    self._version = version
                except SQLAlchemyError as exc:
                    # The keys read last stay in force (a revocation waits for the store); asked again next poll.
                    logger.error("key store unreadable, keeping the %d keys read before: %r", len(self._keys), exc)
                self._checked_at = time.monotonic()
        return self._keys


class RateLimitStoreUnavailable(Exception):
    """The store that counts requests could not record this one; without it no limit holds."""


def key_rate(settings: Settings, limit: int) -> list[Rate]:
    """``limit`` requests per rate window, all of which may come at once (the burst)."""
    return [Rate(limit, int(settings.service.rate_window_seconds * Duration.SECOND))]


def retry_seconds(decision: Decision, settings: Settings) -> float | None:
    """None when the request may pass, else the seconds to wait before the next one."""
    if decision.allowed:
        return None
    wait_ms = decision.retry_after_ms
    return wait_ms / 1000 if wait_ms and wait_ms > 0 else settings.service.rate_window_seconds


class SQLiteStateStore(StateStore):
    """pyrate-limiter's store contract for constant-state algorithms, over one row per key in a SQLite file.

    pyrate-limiter keeps GCRA state in memory, in a ``multiprocessing.Manager`` or in Redis; the service's workers
    are started by BentoML, not by one parent that could share a Manager, so on one machine they share this file.
    The read, the algorithm's step and the write run in one ``BEGIN IMMEDIATE`` transaction: the file's lock
    makes them atomic across the workers. The row holds the algorithm's few numbers however much traffic passes.
    The transaction runs on the event loop (about 0.1 ms, less than a hop to a thread) under a ``db.WriterLock``,
    so a worker that meets the other's transaction waits for its end, not for SQLite's next poll 1 to 10 ms later.
    """

    default_clock = WallClock()  # the state is compared across processes

    def __init__(self, connection: sqlite3.Connection, lock: db.WriterLock, key: str) -> None:
        self._connection, self._lock, self._key = connection, lock, key

    @staticmethod
    def connect(path: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
        # A lost counter costs at most one window of leniency: no fsync per request.
        db.use_wal(connection)
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("CREATE TABLE IF NOT EXISTS rate_state (bucket TEXT PRIMARY KEY, state TEXT NOT NULL)")
        return connection

    def _load(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        row = self._connection.execute("SELECT state FROM rate_state WHERE bucket = ?", (self._key,)).fetchone()
        state = algorithm.decode(row[0].split(",")) if row else algorithm.initial(rates)
        return state if len(state) == len(rates) else algorithm.initial(rates)

    def check(self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int) -> Decision:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")  # waits for the other workers' transactions
            try:
                state, decision = algorithm.step(rates, self._load(algorithm, rates), now, weight)
                if decision.allowed:
                    self._connection.execute(
                        "INSERT INTO rate_state (bucket, state) VALUES (?, ?) "
                        "ON CONFLICT (bucket) DO UPDATE SET state = excluded.state",
                        (self._key, ",".join(str(value) for value in state)),
                    )
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
        return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        with self._lock:
            return self._load(algorithm, rates)

    def reset(self) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM rate_state WHERE bucket = ?", (self._key,))


class RateLimits:
    """One pyrate-limiter GCRA bucket per key, its state a row in the SQLite file the workers of one machine share.

    GCRA keeps one number per key and decides in constant time; the sliding log it replaces counted every entry
    of the window on each request (1.3 ms at 50,000 entries, on the event loop).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.rate_limit_store
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._connection: sqlite3.Connection | None = None
        self._buckets: dict[tuple[str, int], StateBucket] = {}
        self._lock = threading.Lock()
        self._writer = db.WriterLock(self._path)

    def _bucket(self, key_id: str, limit: int) -> StateBucket:
        if (key_id, limit) not in self._buckets:
            with self._lock:
                if self._connection is None:
                    # Under the writer lock: two workers starting together would otherwise switch the new file to
                    # WAL and create its table at once, and a lock upgrade SQLite refuses without waiting fails one.
                    with self._writer:
                        self._connection = SQLiteStateStore.connect(self._path)
                store = SQLiteStateStore(self._connection, self._writer, f"{key_id}:{limit}")
                self._buckets[(key_id, limit)] = StateBucket(key_rate(self._settings, limit), GCRA(), store)
        return self._buckets[(key_id, limit)]

    async def hit(self, key_id: str, limit: int | None) -> float | None:
        """None when the request may pass, else the seconds to wait before the next one."""
        try:
            bucket = self._bucket(key_id, limit or self._settings.service.rate_limit)
            decision = bucket.put_decision(RateItem(key_id, bucket.now()))
        except (sqlite3.Error, OSError) as exc:  # OSError: the lock file beside it
            raise RateLimitStoreUnavailable(repr(exc)) from exc
        return retry_seconds(decision, self._settings)


class SharedRateLimits:
    """One pyrate-limiter GCRA bucket per key in Redis (its Lua script, one hash per key that expires on its own):
    every instance of the service counts in the same state.

    The client is asyncio's, so a slow Redis holds only the requests that wait for it, not the worker's event loop.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.service.rate_limit_url is not None
        self._settings = settings
        self._redis: Any = None  # created in the event loop that uses it
        self._buckets: dict[tuple[str, int], StateBucket] = {}

    def _bucket(self, key_id: str, limit: int) -> StateBucket:
        if self._redis is None:
            self._redis = redis_store.async_client(self._settings.service.rate_limit_url)
        if (key_id, limit) not in self._buckets:
            store = RedisStateStore(self._redis, f"{RATE_LIMIT_KEY_PREFIX}{key_id}:{limit}")
            self._buckets[(key_id, limit)] = StateBucket(key_rate(self._settings, limit), GCRA(), store)
        return self._buckets[(key_id, limit)]

    async def hit(self, key_id: str, limit: int | None) -> float | None:
        """None when the request may pass, else the seconds to wait before the next one."""
        try:
            bucket = self._bucket(key_id, limit or self._settings.service.rate_limit)
            # A Redis that restarted and forgot the script gets it again from redis-py's Script object.
            decision = await bucket.put_decision(RateItem(key_id, bucket.now()))
        except RedisError as exc:
            raise RateLimitStoreUnavailable(repr(exc)) from exc
        return retry_seconds(decision, self._settings)


def rate_limits(settings: Settings) -> RateLimits | SharedRateLimits:
    """Counters in Redis when a URL is set (a fleet of instances), else in the machine's SQLite file."""
    return SharedRateLimits(settings) if settings.service.rate_limit_url else RateLimits(settings)


@dataclass
class SecurityLog:
    """Events are queued to a writer thread: a refused request never waits for the disk."""

    writer: GroupWriter

    @classmethod
    def open(cls, settings: Settings) -> SecurityLog:
        engine = db.engine_for(settings.security_log_url, migrations.SECURITY_LOG)
        return cls(GroupWriter(engine, security_log.security_events))

    def record(self, scope: Scope, event_type: str, *, key_id: str | None = None, detail: Any = None) -> None:
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        self.writer.submit(
            [
                {
                    "ts": utc_now(),
                    "event_type": event_type,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:500] or None,
                    "key_id": key_id,
                    "method": scope.get("method"),
                    "path": scope.get("path", "")[:500],
                    "detail": detail,
                }
            ]
        )


def presented_key(scope: Scope) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key``."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw.extend((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


_ROUTING_ERRORS = {
    404: (security_log.NOT_FOUND, "no such endpoint"),
    405: (security_log.METHOD_NOT_ALLOWED, "method not allowed here"),
}


def _json_routing_errors(scope: Scope, send: Send, security: SecurityLog) -> Send:
    """The framework answers unknown paths and methods in plain text; clients get the project's JSON errors.

    Such requests are probes as often as typos (path traversal, scanners): each goes to the security log.
    """
    replaced = False

    async def wrapped(message: dict[str, Any]) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message["status"] in _ROUTING_ERRORS:
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if not content_type.startswith(b"application/json"):
                replaced = True
                error, reason = _ROUTING_ERRORS[message["status"]]
                security.record(scope, error, key_id=scope.get("state", {}).get("key_id"))
                allow = {k.decode(): v.decode() for k, v in message.get("headers", []) if k == b"allow"}
                detail = [{"field": "path", "reason": f"{reason}: {scope['method']} {scope['path']}"}]
                await send_json(send, message["status"], {"error": error, "detail": detail}, allow)
                return
        if replaced:
            return  # the plain-text body that belonged to the replaced start
        await send(message)

    return wrapped


class Guard:
    """API key check, rate limit and admin scope; the key id travels on in ``scope["state"]["key_id"]``."""

    def __init__(self, app: ASGIApp, runtime: Callable[[], Any]) -> None:
        """``runtime`` returns the worker's shared objects (keys, limits, logs), created on first use."""
        self.app = app
        self.runtime = runtime()
        self.open_paths = frozenset(self.runtime.settings.service.open_paths)
        self.page_open = page.DOCS_PATH in self.open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or (self.page_open and page.is_page_path(path)):
            await self._pass(scope, receive, send)
            return
        rt = self.runtime
        key = presented_key(scope)
        key_id = api_keys.verify(key, rt.keys.active(api_keys.key_id_of(key))) if key else None
        if key_id is None:
            event = security_log.INVALID_KEY if key else security_log.MISSING_KEY
            rt.security.record(scope, event, key_id=api_keys.key_id_of(key) if key else None)
            reason = "invalid or revoked API key" if key else "send an API key as 'Authorization: Bearer' or X-API-Key"
            body = {"error": "unauthorized", "detail": [{"field": "authorization", "reason": reason}]}
            await send_json(send, 401, body, {"WWW-Authenticate": 'Bearer realm="mlops"'})
            return
        record = rt.keys.active()[key_id]
        if scope["path"].startswith("/admin/") and record.scope != api_keys.ADMIN:
            rt.security.record(scope, "forbidden", key_id=key_id)
            reason = "this key may not call admin endpoints"
            await send_json(send, 403, {"error": "forbidden", "detail": [{"field": "authorization", "reason": reason}]})
            return
        try:
            wait = await rt.limits.hit(key_id, record.rate_limit)
        except RateLimitStoreUnavailable as exc:
            # Raised here, the request would hang until the traffic timeout; without the store no limit holds.
            logger.error("rate-limit store unavailable, answering 503: %r", exc)
            reason = "the rate-limit store cannot record this request; retry later"
            body = {"error": "rate_limit_store_unavailable", "detail": [{"field": "rate_limit", "reason": reason}]}
            await send_json(send, 503, body, {"Retry-After": "5"})
            return
        if wait is not None:
            rt.security.record(scope, security_log.RATE_LIMITED, key_id=key_id)
            retry_after = str(max(1, math.ceil(wait)))
            detail = f"rate limit of this key reached; retry after {retry_after} s"
            body = {"error": "rate_limited", "detail": [{"field": "authorization", "reason": detail}]}
            await send_json(send, 429, body, {"Retry-After": retry_after})
            return
        scope.setdefault("state", {})["key_id"] = key_id
        await self._pass(scope, receive, send)

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/readyz" and scope["method"] in ("GET", "HEAD"):
            state, reasons = self.runtime.holder.readiness()
            await send_json(send, 503 if state == "not_ready" else 200, self.runtime.describe(state, reasons))
            return
        if scope["type"] == "http":
            send = _json_routing_errors(scope, send, self.runtime.security)
        await self.app(scope, receive, send)
