"""The service's health and the security events of a check's window, as figures.

Requests are the answered predictions (prediction log) plus the refused requests (security log): a refusal
never reaches the prediction log. Client errors (4xx) are the refused inputs, keys, paths and methods;
rate-limit refusals (429) and server errors (5xx) are counted apart. Refused keys and rate-limit refusals are
also counted per hour: a burst of them is probing or abuse, an alert of its own kind.
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
    refused_keys_per_hour: float
    rate_limited_per_hour: float


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


def health_figures(latencies: np.ndarray, events: pd.DataFrame, hours: float) -> HealthFigures:
    """Rates over the window's requests, p99 latency of its answers, refusals per hour."""
    counts = events["event_type"].value_counts() if len(events) else pd.Series(dtype=int)

    def count(*kinds: str) -> int:
        return int(sum(counts.get(kind, 0) for kind in kinds))

    requests = len(latencies) + len(events)
    share = 1 / requests if requests else 0.0
    per_hour = 1 / max(hours, 1e-9)
    return HealthFigures(
        requests=requests,
        latency_p99_ms=float(np.percentile(latencies, 99)) if len(latencies) else None,
        client_error_rate=count(*CLIENT_ERRORS) * share,
        rate_limited_rate=count(security_log.RATE_LIMITED) * share,
        server_error_rate=count(security_log.SERVER_ERROR) * share,
        refused_keys_per_hour=count(*REFUSED_KEYS) * per_hour,
        rate_limited_per_hour=count(security_log.RATE_LIMITED) * per_hour,
    )
