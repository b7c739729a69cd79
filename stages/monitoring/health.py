"""The service's health and the security events of a check's window, as figures.

Requests are the answered predictions (prediction log) plus the refused requests (security log): a refusal
never reaches the prediction log. Client errors (4xx) are the refused inputs, keys, paths and methods;
rate-limit refusals (429) and server errors (5xx) are counted apart. Refused keys and rate-limit refusals are
also counted in the window's busiest clock hour: a burst of them is probing or abuse, an alert of its own kind,
and a long window must not dilute it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mlops_core import security_log
from mlops_core.prediction_log import VARIANT_SHADOW, predictions

CLIENT_ERRORS = (
    security_log.INVALID_INPUT,
    security_log.INVALID_KEY,
    security_log.MISSING_KEY,
    security_log.NOT_FOUND,
    security_log.METHOD_NOT_ALLOWED,
)
REFUSED_KEYS = (security_log.INVALID_KEY, security_log.MISSING_KEY)


@dataclass(frozen=True)
class HealthFigures:
    requests: int
    latency_p99_ms: float | None
    client_error_rate: float
    rate_limited_rate: float
    server_error_rate: float
    refused_keys_per_hour: int  # in the busiest clock hour of the window
    rate_limited_per_hour: int


def window_latencies(engine: Engine, model: str, start: datetime, end: datetime) -> np.ndarray:
    """The latency of every answered prediction in the window (shadow answers are not the caller's)."""
    query = select(predictions.c.latency_ms).where(
        predictions.c.model_name == model,
        predictions.c.ts >= start,
        predictions.c.ts < end,
        predictions.c.variant != VARIANT_SHADOW,
    )
    with engine.connect() as connection:
        return np.asarray(connection.execute(query).scalars().all(), dtype=float)


def health_figures(latencies: np.ndarray, events: pd.DataFrame) -> HealthFigures:
    """Rates over the window's requests, p99 latency of its answers, refusals in the busiest hour."""
    kinds = events["event_type"]

    def share(*of: str) -> float:
        return int(kinds.isin(of).sum()) / requests if requests else 0.0

    def busiest_hour(*of: str) -> int:
        stamps = pd.to_datetime(events.loc[kinds.isin(of), "ts"], utc=True)
        return int(stamps.dt.floor("h").value_counts().max()) if len(stamps) else 0

    requests = len(latencies) + len(events)
    return HealthFigures(
        requests=requests,
        latency_p99_ms=float(np.percentile(latencies, 99)) if len(latencies) else None,
        client_error_rate=share(*CLIENT_ERRORS),
        rate_limited_rate=share(security_log.RATE_LIMITED),
        server_error_rate=share(security_log.SERVER_ERROR),
        refused_keys_per_hour=busiest_hour(*REFUSED_KEYS),
        rate_limited_per_hour=busiest_hour(security_log.RATE_LIMITED),
    )
