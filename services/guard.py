"""What stands in front of every route: API keys, per-key rate limits, the security event log.

The checks run as ASGI middleware on the whole BentoML app, so they also cover BentoML's own routes (the
docs, and /metrics when it is not configured open). Rate-limit counters live in a pyrate-limiter SQLite
bucket guarded by a file lock, so a key's limit holds across all worker processes on the machine; with
``MLOPS_SERVICE__RATE_LIMIT_URL`` they live in Redis and the limit holds across every instance.
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
from typing import Any

from filelock import FileLock
from pyrate_limiter import Duration, Limiter, Rate, RateItem, RedisBucket, SQLiteBucket
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from mlops_core import api_keys, db, migrations, redis_store, security_log
from mlops_core.api_keys import ActiveKey, KeyStore
from mlops_core.prediction_log import GroupWriter, utc_now
from mlops_core.settings import Settings
from services import page

KEY_REFRESH_SECONDS = 2.0
UNSEEN_KEY_RECHECK_SECONDS = 0.25
LOCK_POLL_SECONDS = 0.001
LEAK_INTERVAL_SECONDS = 10.0
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


class RateLimits:
    """One pyrate-limiter bucket per key (its own table in the shared SQLite file): counts across the workers
    of one machine."""

    def __init__(self, settings: Settings) -> None:
        self._path = settings.rate_limit_store
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._default = settings.service.rate_limit
        self._window_ms = int(settings.service.rate_window_seconds * Duration.SECOND)
        self._limiters: dict[tuple[str, int], tuple[Limiter, SQLiteBucket]] = {}
        self._lock = threading.Lock()

    def _limiter(self, key_id: str, limit: int) -> tuple[Limiter, SQLiteBucket]:
        with self._lock:
            if (key_id, limit) not in self._limiters:
                bucket = SQLiteBucket.init_from_file(
                    [Rate(limit, self._window_ms)],
                    table=f"key_{key_id}_{limit}",
                    db_path=str(self._path),
                    use_file_lock=True,
                )
                # The same lock file, polled every millisecond: the lock is held for a fraction of one, and the
                # default 50 ms poll stalled every request of a worker that found it held (the check runs on the
                # event loop).
                bucket.lock = FileLock(f"{self._path}.lock", poll_interval=LOCK_POLL_SECONDS)
                # The Limiter is kept for its background leak of expired entries.
                self._limiters[(key_id, limit)] = (Limiter(bucket), bucket)
            return self._limiters[(key_id, limit)]

    async def hit(self, key_id: str, limit: int | None) -> float | None:
        """None when the request may pass, else the seconds to wait before the next one."""
        try:
            _, bucket = self._limiter(key_id, limit or self._default)
            # bucket.put holds the bucket's file lock itself. Limiter.try_acquire(blocking=False) would be the
            # usual call, but pyrate-limiter 4.5.1 passes False to FileLock.acquire as a timeout (TypeError).
            if bucket.put(RateItem(key_id, bucket.now())):
                return None
            wait_ms = bucket.waiting(RateItem(key_id, bucket.now()))
        except sqlite3.Error as exc:
            raise RateLimitStoreUnavailable(repr(exc)) from exc
        return max(wait_ms, 0) / 1000 if isinstance(wait_ms, int) and wait_ms > 0 else self._window_ms / 1000


class SharedRateLimits:
    """One pyrate-limiter Redis bucket per key: every instance of the service counts in the same sorted set.

    The client is asyncio's, so a slow Redis holds only the requests that wait for it, not the worker's event
    loop. Expired entries are trimmed by the request path itself, at most once per leak interval per bucket: a
    background leaker that hit a Redis outage would stop for good, and the set would grow without bound.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.service.rate_limit_url is not None
        self._url = settings.service.rate_limit_url
        self._redis: Any = None  # created in the event loop that uses it
        self._default = settings.service.rate_limit
        self._window_ms = int(settings.service.rate_window_seconds * Duration.SECOND)
        self._buckets: dict[tuple[str, int], RedisBucket] = {}
        self._leaked_at: dict[tuple[str, int], float] = {}

    async def _bucket(self, key_id: str, limit: int, *, reload: bool = False) -> RedisBucket:
        if self._redis is None:
            self._redis = redis_store.async_client(self._url)
        if reload or (key_id, limit) not in self._buckets:
            rates = [Rate(limit, self._window_ms)]
            key = f"{RATE_LIMIT_KEY_PREFIX}{key_id}:{limit}"
            self._buckets[(key_id, limit)] = await RedisBucket.init(rates, self._redis, key)
        return self._buckets[(key_id, limit)]

    async def hit(self, key_id: str, limit: int | None) -> float | None:
        """None when the request may pass, else the seconds to wait before the next one."""
        limit = limit or self._default
        try:
            bucket = await self._bucket(key_id, limit)
            try:
                decision = await bucket.put_decision(RateItem(key_id, bucket.now()))
            except NoScriptError:  # Redis restarted and forgot the bucket's script: load it again
                bucket = await self._bucket(key_id, limit, reload=True)
                decision = await bucket.put_decision(RateItem(key_id, bucket.now()))
            await self._leak(key_id, limit, bucket)
        except RedisError as exc:
            raise RateLimitStoreUnavailable(repr(exc)) from exc
        if decision.allowed:
            return None
        wait_ms = decision.retry_after_ms
        return wait_ms / 1000 if wait_ms and wait_ms > 0 else self._window_ms / 1000

    async def _leak(self, key_id: str, limit: int, bucket: RedisBucket) -> None:
        """Drop entries older than the window; a key left unused expires once its last entry would have."""
        now = time.monotonic()
        if now - self._leaked_at.get((key_id, limit), -math.inf) < LEAK_INTERVAL_SECONDS:
            return
        self._leaked_at[(key_id, limit)] = now
        await bucket.leak(bucket.now())
        # Entries written until the next leak must outlive their window: the expiry covers one leak interval more.
        await self._redis.pexpire(bucket.bucket_key, self._window_ms + int(LEAK_INTERVAL_SECONDS * 1000))


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
