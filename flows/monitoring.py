"""The monitoring flow: logged predictions vs the champion's reference -> drift and quality -> alert -> retrain."""

from __future__ import annotations

from prefect import flow

from flows.run_names import monitoring_run_name
from mlops_core.settings import get_settings
from stages.monitoring.decision import check_alerts
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import champion_quality
from tasks.monitoring import (
    decide_and_trigger,
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


@flow(name="monitoring", flow_run_name=monitoring_run_name)
def monitoring_flow(window_hours: float | None = None) -> CheckRecord:
    """Check the predictions logged since the last check and the labels arrived since; retrain on drift or
    decay over a threshold, alert on service health and security.

    Args:
        window_hours: Check the predictions of the last N hours instead of those since the last check.
    """
    settings = get_settings()
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
        return decide_and_trigger(settings, window, None, quality, None, health, drift_skipped=reason)
    drift = measure_drift(reference, sample, settings)
    scores = measure_prediction_drift(reference, sample, settings)
    report = log_check_to_mlflow(settings, window, reference, sample, drift, qualities, scores, health)
    record = decide_and_trigger(settings, window, drift, quality, scores, health)
    publish_monitoring_summary(record, reference, sample, drift, qualities, scores, health, report)
    return record
