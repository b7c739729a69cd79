"""Redis clients for the state that service instances share (rate-limit counters, the feature update journal).

Both fail fast: a Redis that does not answer within a second is an error the caller turns into a clear refusal
(503), not a request that hangs through redis-py's default ten retries with back-off. One retry stays, for the
pooled connection that a restarted Redis closed.
"""

from __future__ import annotations

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

TIMEOUT_SECONDS = 1.0
RETRIES = 1


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), RETRIES),
    )


def async_client(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=AsyncRetry(NoBackoff(), RETRIES),
    )
