"""The monitoring flow: logged predictions vs the champion's reference -> drift and quality -> alert -> retrain."""

from __future__ import annotations

from prefect import flow

from mlops_core.settings import get_settings
from stages.monitoring.history import CheckRecord
from tasks.monitoring import (
    decide_and_trigger,
    load_champion_reference,
    log_check_to_mlflow,
    measure_drift,
    measure_quality,
    open_check_window,
    publish_monitoring_summary,
    record_skipped_check,
    sample_prediction_window,
    skip_reason,
    summarise_security_events,
)


@flow(name="monitoring")
def monitoring_flow(window_hours: float | None = None) -> CheckRecord:
    """Check the predictions logged since the last check; retrain when drift or decay crosses a threshold."""
    settings = get_settings()
    window = open_check_window(settings, window_hours)
    reference = load_champion_reference(settings)
    sample = sample_prediction_window(settings, window, reference)
    if reason := skip_reason(sample, settings):
        return record_skipped_check(settings, window, reason)
    drift = measure_drift(reference, sample, settings)
    quality = measure_quality(reference, sample, settings)
    report = log_check_to_mlflow(settings, window, reference, sample, drift, quality)
    security = summarise_security_events(settings, window)
    record = decide_and_trigger(settings, window, drift, quality)
    publish_monitoring_summary(record, reference, sample, drift, quality, security, report)
    return record
