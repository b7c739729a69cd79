"""The objects one worker process shares between its middleware and its routes, created once."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import bentoml
from bentoml._internal.resource import query_cgroup_cpu_count

from mlops_core.api_keys import KeyStore
from mlops_core.prediction_log import BatchJournal, EventLoopWriter, GroupWriter, engine_for, predictions, row_writer
from mlops_core.settings import Settings, get_settings
from services.guard import KeyCache, RateLimits, SecurityLog, SharedRateLimits, rate_limits
from services.models import ModelHolder, ServedModel

# A registry that does not answer must not hold the poller for minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions_total",
    documentation="Predictions answered, by variant, model version and predicted class",
    labelnames=["variant", "model_version", "prediction"],
)
CHALLENGER_FAULTS = bentoml.metrics.Counter(
    name="mlops_challenger_faults_total",
    documentation="Requests the challenger could not score (the champion answered or the shadow row was lost)",
    labelnames=["mode", "reason"],
)
REFUSED = bentoml.metrics.Counter(
    name="mlops_refused_requests_total",
    documentation="Requests refused before prediction, by reason",
    labelnames=["reason"],
)
MODEL_VERSION = bentoml.metrics.Gauge(
    name="mlops_model_version",
    documentation="Registry version each worker serves (0 while none is loaded)",
    multiprocess_mode="liveall",
)
LOG_SECONDS = bentoml.metrics.Histogram(
    name="mlops_prediction_log_seconds",
    documentation="Time a request waits for its prediction-log commit",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0),
)


def usable_cores(affinity: int, cgroup_cpus: float) -> int:
    """Whole cores a process can keep busy: the cores it may run on (``affinity``), capped by the CPU time its
    control group may use (``cgroup_cpus``: a container's ``--cpus``, a Kubernetes CPU limit), at least one.

    A quota is not a set of cores: a container limited to 2 CPUs on a 64-core host sees 64 cores in its affinity,
    and more threads busy than its quota use it up early in each scheduling period, then wait, throttled, for the
    next. BentoML reads the same quota (``query_cgroup_cpu_count``) where its workers are set to ``cpu_count``.
    """
    return max(1, min(affinity, int(cgroup_cpus)))


@dataclass
class Runtime:
    settings: Settings
    holder: ModelHolder
    keys: KeyCache
    limits: RateLimits | SharedRateLimits
    security: SecurityLog
    prediction_writer: GroupWriter | EventLoopWriter | None
    batch_journal: BatchJournal | None  # /predict_batch's log: one record per batch, expanded into rows later

    @cached_property
    def batch_scoring_threads(self) -> int:
        """The setting, else the whole cores this worker may keep busy (``usable_cores``)."""
        if self.settings.service.batch_scoring_threads:
            return self.settings.service.batch_scoring_threads
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return usable_cores(affinity, query_cgroup_cpu_count())

    def describe(self, state: str, reasons: list[str]) -> dict[str, Any]:
        holder = self.holder
        mode = {"mode": holder.mode.mode, "challenger_share": holder.mode.challenger_share}
        return {
            "status": state,
            "reasons": reasons,
            "worker": os.getpid(),  # readiness is per worker process; this says which one answered
            "model": _summary(holder.current),
            "challenger": _summary(holder.challenger.current),
            "serving": mode,
        }

    def close(self) -> None:
        self.holder.stop()
        self.security.writer.close()
        if self.prediction_writer is not None:
            self.prediction_writer.close()
        if self.batch_journal is not None:
            self.batch_journal.close()


def _summary(model: ServedModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"name": model.name, "version": model.version, "semver": model.semver, "runtime": model.runtime}


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The worker's one Runtime. Locked: the service's __init__ and the middleware's first request race for it."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _create()
        return _runtime


def _create() -> Runtime:
    settings = get_settings()
    settings.service_dir.mkdir(parents=True, exist_ok=True)
    writer = journal = None
    if settings.service.prediction_log:
        engine = engine_for(settings.prediction_log_url)  # expands the batches a stopped service left as records
        writer, journal = row_writer(engine, predictions), BatchJournal(engine)
    rt = Runtime(
        settings=settings,
        holder=ModelHolder(settings, settings.service_dir / "reload.signal"),
        keys=KeyCache(KeyStore(settings.keys_url)),
        limits=rate_limits(settings),
        security=SecurityLog.open(settings),
        prediction_writer=writer,
        batch_journal=journal,
    )
    MODEL_VERSION.set(0)
    rt.holder.on_change = lambda model: MODEL_VERSION.set(model.version)
    rt.holder.start()
    return rt
