"""API keys for the prediction service: created and revoked with ``mlops keys``, stored only as hashes.

A key reads ``mlops_<key id>_<secret>``. The key id is public (it appears in logs and rate limits); the store
holds the SHA-256 of the whole key, which is enough for 256-bit random secrets (no password stretching needed),
and the service compares digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PREFIX = "mlops"


ADMIN = "admin"
PREDICT = "predict"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    scope: str
    rate_limit: int | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class ActiveKey:
    key_hash: str
    scope: str
    rate_limit: int | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def verify(key: str, active: dict[str, ActiveKey]) -> str | None:
    """The key id when ``key`` matches an active key, else None; the digest comparison is constant-time."""
    key_id = key_id_of(key)
    record = active.get(key_id or "")
    # Compare even for unknown ids, so that they and wrong secrets take the same time.
    matches = hmac.compare_digest(digest(key), record.key_hash if record else "0" * 64)
    return key_id if record and matches else None


class KeyStore:
    """A small SQLite file; the service re-reads it every few seconds, so revocation needs no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                "key_hash TEXT NOT NULL, scope TEXT NOT NULL, rate_limit INTEGER, created_at TEXT NOT NULL, revoked_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def create(self, name: str, *, scope: str = PREDICT, rate_limit: int | None = None) -> tuple[str, str]:
        """A new key: returns (key id, key). The key is shown once and never stored.

        ``admin`` keys may also call the admin endpoints; ``rate_limit`` overrides the service default.
        """
        if scope not in (PREDICT, ADMIN):
            raise ValueError(f"unknown scope {scope!r}; use {PREDICT!r} or {ADMIN!r}")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO api_keys (key_id, name, key_hash, scope, rate_limit, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, digest(key), scope, rate_limit, datetime.now(UTC).isoformat()),
            )
        return key_id, key

    def revoke(self, key_id: str) -> bool:
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), key_id),
            )
        return cursor.rowcount == 1

    def list(self) -> list[KeyRecord]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT key_id, name, scope, rate_limit, created_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [KeyRecord(*row) for row in rows]

    def active(self) -> dict[str, ActiveKey]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT key_id, key_hash, scope, rate_limit FROM api_keys WHERE revoked_at IS NULL"
            ).fetchall()
        return {key_id: ActiveKey(key_hash, scope, rate_limit) for key_id, key_hash, scope, rate_limit in rows}
