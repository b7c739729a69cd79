"""The monitoring history: past checks, so each window starts where the last successful one ended and alerts
are de-duplicated into episodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine

from mlops_core import db, migrations
from mlops_core.settings import MonitoringSettings

Status = Literal["ok", "alert", "skipped", "failed"]

_metadata = MetaData()
checks = Table(
    "monitoring_checks",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("model", String(256), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("drift_share", Float),
    Column("quality_drop", Float),
    Column("episode", Integer, nullable=False, default=0),
    Column("triggered", Boolean, nullable=False, default=False),
    Column("retraining_alert", Boolean, nullable=False, default=False),
    Column("retraining_run_id", String(64)),
    Column("retraining_event_id", String(64)),
    Column("reason", Text, nullable=False),
)


class CheckRecord(BaseModel):
    id: int | None = None
    checked_at: datetime
    model: str
    window_start: datetime
    window_end: datetime
    status: Status
    drift_share: float | None = None
    quality_drop: float | None = None
    episode: int = 0
    triggered: bool = False
    retraining_alert: bool = False  # drift or quality; a health or security alert alone is not
    retraining_run_id: str | None = None  # checks before alert events started the retraining run themselves
    retraining_event_id: str | None = None  # the Prefect event asking for it; the trigger starts the run
    reason: str


def _utc(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


class CheckHistory:
    """Past checks, so each window starts where the last successful one ended and alerts are de-duplicated."""

    def __init__(self, url: str):
        self.engine: Engine = db.engine_for(url, migrations.MONITORING_HISTORY)

    def _records(self, model: str, *conditions: Any, limit: int | None = None) -> list[CheckRecord]:
        query = select(checks).where(checks.c.model == model, *conditions).order_by(checks.c.id.desc())
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            CheckRecord(
                **{
                    **row,
                    **{k: _utc(row[k]) for k in ("checked_at", "window_start", "window_end")},
                }
            )
            for row in rows
        ]

    def last(self, model: str) -> CheckRecord | None:
        found = self._records(model, checks.c.status.in_(["ok", "alert"]), limit=1)
        return found[0] if found else None

    def last_trigger(self, model: str) -> CheckRecord | None:
        found = self._records(model, checks.c.triggered.is_(True), limit=1)
        return found[0] if found else None

    def episode_triggered(self, model: str, episode: int) -> bool:
        return bool(self._records(model, checks.c.episode == episode, checks.c.triggered.is_(True), limit=1))

    def record(self, record: CheckRecord) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(checks.insert().values(**record.model_dump(exclude={"id"})))
        return int(result.inserted_primary_key[0])

    def all(self, model: str) -> list[CheckRecord]:
        return list(reversed(self._records(model)))


def check_window(
    history: CheckHistory, model: str, policy: MonitoringSettings, now: datetime
) -> tuple[datetime, datetime]:
    """From the end of the last successful check (or the configured window) until now."""
    last = history.last(model)
    start = last.window_end if last else now - timedelta(hours=policy.window_hours)
    return start, now
