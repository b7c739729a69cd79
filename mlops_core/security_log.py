"""The security event log: refused keys, rate-limit hits, refused inputs and server errors, never a key itself."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, select

from mlops_core import db, migrations

INVALID_KEY = "invalid_key"
MISSING_KEY = "missing_key"
RATE_LIMITED = "rate_limited"
INVALID_INPUT = "invalid_input"
NOT_FOUND = "not_found"  # unknown paths (scanners, path traversal) and methods
METHOD_NOT_ALLOWED = "method_not_allowed"
SERVER_ERROR = "server_error"  # an unhandled error answered 500: not security, but the service's only error log

metadata = MetaData()

security_events = Table(
    "security_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("event_type", String(40), nullable=False),
    Column("client", String(100)),
    Column("user_agent", String(500)),
    Column("key_id", String(64)),
    Column("method", String(10)),
    Column("path", String(500)),
    Column("detail", JSON),
)


def read_security_events(url: str, *, since: datetime | None = None) -> pd.DataFrame:
    query = select(security_events).order_by(security_events.c.id)
    if since is not None:
        query = query.where(security_events.c.ts >= since)
    engine = db.engine_for(url, migrations.SECURITY_LOG)
    try:
        with engine.connect() as connection:
            return pd.DataFrame(connection.execute(query).mappings().all(), columns=list(security_events.c.keys()))
    finally:
        engine.dispose()
