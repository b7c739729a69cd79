"""API keys for the prediction service: created and revoked with ``mlops keys``, stored only as hashes.

A key reads ``mlops_<key id>_<secret>``. The key id is public (it appears in logs and rate limits); the store
holds the SHA-256 of the whole key, which is enough for 256-bit random secrets (no password stretching needed),
and the service compares digests in constant time.

The store is a SQLite file by default and any SQLAlchemy URL by settings (``MLOPS_SERVICE__KEYS_URL``), so
that every instance of the service reads one set of keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, func, make_url, select, update

from mlops_core import migrations

PREFIX = "mlops"


ADMIN = "admin"
PREDICT = "predict"
CONNECT_TIMEOUT_SECONDS = 2


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


metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("rate_limit", Integer),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
)


class KeyStore:
    """The key table at a SQLAlchemy URL (a path means a SQLite file, as in earlier releases).

    The SQLite file keeps SQLite's default rollback journal: every write then changes the file itself, which
    the service's key cache watches with a ``stat``. A server database offers ``version()`` instead.
    """

    def __init__(self, location: str | Path) -> None:
        url = make_url(f"sqlite:///{location}" if isinstance(location, Path) else location)
        migrations.upgrade(url, migrations.API_KEYS)
        self.file: Path | None = None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self.file = Path(url.database)
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        elif url.get_backend_name() == "postgresql":
            # The service polls the store from its event loop: an unreachable server must not hold it for minutes.
            self.engine = create_engine(
                url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
            )
        else:
            self.engine = create_engine(url, pool_pre_ping=True)

    def create(self, name: str, *, scope: str = PREDICT, rate_limit: int | None = None) -> tuple[str, str]:
        """A new key: returns (key id, key). The key is shown once and never stored.

        ``admin`` keys may also call the admin endpoints; ``rate_limit`` overrides the service default.
        """
        if scope not in (PREDICT, ADMIN):
            raise ValueError(f"unknown scope {scope!r}; use {PREDICT!r} or {ADMIN!r}")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        row = {
            "key_id": key_id,
            "name": name,
            "key_hash": digest(key),
            "scope": scope,
            "rate_limit": rate_limit,
            "created_at": datetime.now(UTC).isoformat(),
        }
        with self.engine.begin() as db:
            db.execute(api_keys.insert().values(**row))
        return key_id, key

    def revoke(self, key_id: str) -> bool:
        revoked = (
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC).isoformat())
        )
        with self.engine.begin() as db:
            return db.execute(revoked).rowcount == 1

    def list(self) -> list[KeyRecord]:
        c = api_keys.c
        query = select(c.key_id, c.name, c.scope, c.rate_limit, c.created_at, c.revoked_at).order_by(c.created_at)
        with self.engine.connect() as db:
            return [KeyRecord(*row) for row in db.execute(query)]

    def active(self) -> dict[str, ActiveKey]:
        c = api_keys.c
        query = select(c.key_id, c.key_hash, c.scope, c.rate_limit).where(c.revoked_at.is_(None))
        with self.engine.connect() as db:
            rows = db.execute(query).all()
        return {key_id: ActiveKey(key_hash, scope, rate_limit) for key_id, key_hash, scope, rate_limit in rows}

    def version(self) -> tuple[int, int]:
        """Keys created and keys revoked so far: both only grow (keys are never deleted nor un-revoked), so
        any change to the active keys changes this pair. One small aggregate, far cheaper than ``active()``."""
        query = select(func.count(), func.count(api_keys.c.revoked_at))
        with self.engine.connect() as db:
            created, revoked = db.execute(query).one()
        return created, revoked

    def close(self) -> None:
        self.engine.dispose()
