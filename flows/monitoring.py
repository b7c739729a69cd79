"""The monitoring flow: logged predictions vs the champion's reference -> drift and quality -> alert events (the
retraining deployment's trigger in prefect.yaml starts the retraining) and a notification."""

from __future__ import annotations

from prefect import flow

from flows.run_names import monitoring_run_name
from mlops_core.settings import Settings, get_settings
from stages.monitoring.decision import check_alerts
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import champion_quality
from tasks.monitoring import (
    decide_and_alert,
    load_champion_reference,
    log_check_to_mlflow,
    measure_drift,
    measure_prediction_drift,
    measure_quality,
    measure_service_health,
    open_check_window,
    publish_monitoring_summary,
    record_skipped_check,
    sample_prediction_window,
    skip_reason,
)


def check_settings(**thresholds: float | None) -> Settings:
    """The process settings with this run's thresholds applied (None: the setting's value)."""
    settings = get_settings()
    update = {name: value for name, value in thresholds.items() if value is not None}
    monitoring = settings.monitoring.model_copy(update=update)
    return Settings.model_validate({**settings.model_dump(), "monitoring": monitoring.model_dump()})


@flow(name="monitoring", flow_run_name=monitoring_run_name)
def monitoring_flow(
    window_hours: float | None = None,
    min_rows: int | None = None,
    drift_share_threshold: float | None = None,
    column_drift_threshold: float | None = None,
    quality_drop_threshold: float | None = None,
    cooldown_hours: float | None = None,
    latency_p99_ms_threshold: float | None = None,
) -> CheckRecord:
    """Check the predictions logged since the last check and the labels arrived since; ask for retraining on
    drift or decay over a threshold (an event the retraining deployment's trigger answers), alert on service
    health and security. Every parameter left empty takes its setting, ``MLOPS_MONITORING__<NAME>`` (see
    ``mlops settings``), so the deployment's defaults are the worker's settings.

    Args:
        window_hours: Check this many hours back from now instead of since the last check (default: since the
            last check; the first check looks back ``MLOPS_MONITORING__WINDOW_HOURS``).
        min_rows: Fewer usable logged rows than this skip the drift check, with the reason.
        drift_share_threshold: Share of drifted input columns that alerts and asks for retraining.
        column_drift_threshold: PSI over which a column (or the score) counts as drifted, if also over its null's
            critical value at the window size.
        quality_drop_threshold: Drop of the champion's ROC AUC on labelled rows below its holdout's that alerts
            and asks for retraining.
        cooldown_hours: Least time between two retrainings this check may request.
        latency_p99_ms_threshold: p99 latency of the window's answers that alerts, without retraining.
    """
    settings = check_settings(
        min_rows=min_rows,
        drift_share_threshold=drift_share_threshold,
        column_drift_threshold=column_drift_threshold,
        quality_drop_threshold=quality_drop_threshold,
        cooldown_hours=cooldown_hours,
        latency_p99_ms_threshold=latency_p99_ms_threshold,
    )
    window = open_check_window(settings, window_hours)
    reference = load_champion_reference(settings)
    sample = sample_prediction_window(settings, window, reference)
    qualities = measure_quality(reference, window, settings)
    quality = champion_quality(qualities, reference.version)
    health = measure_service_health(settings, window)
    if reason := skip_reason(sample, settings):
        # Too few predictions to judge drift; labels on their own clock and the service may still alert.
        if not check_alerts(None, quality, settings.monitoring, None, health):
            return record_skipped_check(settings, window, reason)
        return decide_and_alert(settings, window, None, quality, None, health, drift_skipped=reason)
    drift = measure_drift(reference, sample, settings)
    scores = measure_prediction_drift(reference, sample, settings)
    report = log_check_to_mlflow(settings, window, reference, sample, drift, qualities, scores, health)
    record = decide_and_alert(settings, window, drift, quality, scores, health)
    publish_monitoring_summary(record, reference, sample, drift, qualities, scores, health, report)
    return record
