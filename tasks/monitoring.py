"""Monitoring tasks: window, reference, sample, drift, quality, logging, decision and trigger."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mlflow
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from mlops_core import registry
from mlops_core.prediction_log import engine_for
from mlops_core.security_log import read_security_events
from mlops_core.settings import Settings
from stages.monitoring.decision import decide_alert
from stages.monitoring.drift import DriftResult, PredictionDrift, drift_report, prediction_drift
from stages.monitoring.health import HealthFigures, health_figures, window_latencies
from stages.monitoring.history import CheckHistory, CheckRecord, check_window
from stages.monitoring.quality import QualityResult, champion_quality, labelled_predictions, quality_by_group
from stages.monitoring.reference import Reference, champion_reference
from stages.monitoring.report import monitoring_markdown
from stages.monitoring.window import MonitoringError, WindowSample, sample_window, sampling_error_bound
from stages.promotion.aliases import positive_probability
from tasks.retries import server_retries

Window = tuple[datetime, datetime]


@task(name="open-check-window", cache_policy=NO_CACHE)
def open_check_window(settings: Settings, window_hours: float | None) -> Window:
    now = datetime.now(UTC)
    if window_hours is not None:
        return now - timedelta(hours=window_hours), now
    history = CheckHistory(settings.monitoring_state_url)
    return check_window(history, settings.mlflow.registered_model, settings.monitoring, now)


@task(name="load-champion-reference", cache_policy=NO_CACHE, **server_retries())
def load_champion_reference(settings: Settings) -> Reference:
    reference = champion_reference(registry.connect(settings), settings.mlflow.registered_model)
    get_run_logger().info(
        "reference: %s v%d (%s), %d sample rows",
        reference.model,
        reference.version,
        reference.semver,
        len(reference.sample),
    )
    return reference


@task(name="sample-prediction-window", cache_policy=NO_CACHE, **server_retries())
def sample_prediction_window(settings: Settings, window: Window, reference: Reference) -> WindowSample:
    engine = engine_for(settings.prediction_log_url)
    try:
        sample = sample_window(engine, reference.model, *window, reference.profile, settings.monitoring.max_rows)
    finally:
        engine.dispose()
    get_run_logger().info(
        "window %s .. %s: %d rows logged, %d sampled (CDF error bound %.4f), %d malformed skipped %s",
        *window,
        sample.rows_in_window,
        sample.rows,
        sampling_error_bound(sample.rows),
        sample.malformed,
        sample.malformed_reasons or "",
    )
    return sample


def skip_reason(sample: WindowSample, settings: Settings) -> str | None:
    if sample.rows >= settings.monitoring.min_rows:
        return None
    malformed = f" ({sample.malformed} malformed rows skipped)" if sample.malformed else ""
    return f"{sample.rows} usable rows in the window{malformed}, fewer than the minimum {settings.monitoring.min_rows}"


@task(name="record-skipped-check", cache_policy=NO_CACHE)
def record_skipped_check(settings: Settings, window: Window, reason: str) -> CheckRecord:
    record = CheckRecord(
        checked_at=datetime.now(UTC),
        model=settings.mlflow.registered_model,
        window_start=window[0],
        window_end=window[1],
        status="skipped",
        reason=reason,
    )
    record.id = CheckHistory(settings.monitoring_state_url).record(record)
    get_run_logger().warning("check skipped: %s", reason)
    create_markdown_artifact(key="monitoring-check", markdown=f"# Monitoring check skipped\n\n{reason}")
    return record


@task(name="measure-drift", cache_policy=NO_CACHE)
def measure_drift(reference: Reference, sample: WindowSample, settings: Settings) -> DriftResult:
    drift = drift_report(reference.sample, sample.features, reference.profile, settings.monitoring)
    get_run_logger().info("drift share %.2f, drifted: %s", drift.drift_share, list(drift.drifted_columns))
    return drift


@task(name="measure-prediction-drift", cache_policy=NO_CACHE)
def measure_prediction_drift(reference: Reference, sample: WindowSample, settings: Settings) -> PredictionDrift:
    """The window's scores against the champion's scores of its reference sample."""
    reference_scores = positive_probability(f"models:/{reference.model}/{reference.version}", reference.sample)
    result = prediction_drift(reference_scores, sample.positive_probability, settings.monitoring)
    get_run_logger().info(
        "score PSI %.4f (null's critical value %.4f at %d rows)", result.psi, result.critical_value, result.rows
    )
    return result


@task(name="measure-quality", cache_policy=NO_CACHE, **server_retries())
def measure_quality(reference: Reference, window: Window, settings: Settings) -> list[QualityResult]:
    """Quality per version and variant on the labels that arrived in the rolling label window."""
    policy, end = settings.monitoring, window[1]
    engine = engine_for(settings.prediction_log_url)
    try:
        labelled = labelled_predictions(engine, reference.model, end - timedelta(hours=policy.label_window_hours), end)
    finally:
        engine.dispose()
    results = quality_by_group(labelled, reference.version, reference.holdout_metrics, policy, new_since=window[0])
    for result in results:
        get_run_logger().info(
            "quality of v%d (%s): %s on %d labelled rows (%d new)",
            result.version,
            result.variant,
            {k: round(v, 4) for k, v in result.current.items()},
            result.labelled_rows,
            result.new_labels,
        )
    return results


# Safe to repeat: a retry logs a new run; the failed attempt's run is marked FAILED.
@task(name="log-check-to-mlflow", cache_policy=NO_CACHE, **server_retries())
def log_check_to_mlflow(
    settings: Settings,
    window: Window,
    reference: Reference,
    sample: WindowSample,
    drift: DriftResult,
    qualities: list[QualityResult],
    scores: PredictionDrift,
    health: HealthFigures,
) -> str:
    """One run per check in the monitoring experiment, so drift share over time is a chart; returns the report."""
    client = registry.connect(settings)
    experiment = registry.ensure_experiment(client, settings.monitoring.experiment, settings.artifact_root)
    metrics = {
        "drift_share": drift.drift_share,
        "drifted_columns": len(drift.drifted_columns),
        "rows_in_window": sample.rows_in_window,
        "rows_checked": sample.rows,
        "malformed_rows": sample.malformed,
        "missing_share": drift.missing_share,
        **{f"psi.{name}": score for name, score in drift.scores.items()},
        **{f"psi_critical.{name}": value for name, value in drift.critical_values.items()},
        "score_psi": scores.psi,
        "score_psi_critical": scores.critical_value,
        "requests": health.requests,
        "client_error_rate": health.client_error_rate,
        "server_error_rate": health.server_error_rate,
        "rate_limited_rate": health.rate_limited_rate,
        "refused_keys_per_hour": health.refused_keys_per_hour,
        "rate_limited_per_hour": health.rate_limited_per_hour,
    }
    if health.latency_p99_ms is not None:
        metrics["latency_p99_ms"] = health.latency_p99_ms
    champion = champion_quality(qualities, reference.version)
    if champion:
        metrics.update({f"current.{k}": v for k, v in champion.current.items()}, quality_drop=champion.drop)
        metrics["labelled_rows"] = champion.labelled_rows
    for quality in qualities:
        group = f"quality.v{quality.version}.{quality.variant}"
        metrics.update(
            {f"{group}.{k}": v for k, v in quality.current.items()}, **{f"{group}.rows": quality.labelled_rows}
        )
    with mlflow.start_run(experiment_id=experiment, run_name=f"check-{window[1]:%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags({"model": reference.model, "champion_version": reference.version, "semver": reference.semver})
        mlflow.log_params({"window_start": window[0].isoformat(), "window_end": window[1].isoformat()})
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            html = Path(tmp) / "drift_report.html"
            drift.snapshot.save_html(str(html))
            mlflow.log_artifact(str(html), "evidently")
        uri = mlflow.get_artifact_uri("evidently/drift_report.html")
    return _browsable(uri, settings, experiment, run.info.run_id)


def _browsable(uri: str, settings: Settings, experiment_id: str, run_id: str) -> str:
    if settings.tracking_uri.startswith(("http://", "https://")):
        return f"{settings.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/artifacts"
    return uri


@task(name="measure-service-health", cache_policy=NO_CACHE)
def measure_service_health(settings: Settings, window: Window) -> HealthFigures:
    """Latency of the window's answers (prediction log), refusals and errors (security log)."""
    engine = engine_for(settings.prediction_log_url)
    try:
        latencies = window_latencies(engine, settings.mlflow.registered_model, *window)
    finally:
        engine.dispose()
    events = read_security_events(settings.security_log_url, since=window[0])
    events = events[events["ts"].map(_utc) < window[1]] if len(events) else events
    health = health_figures(latencies, events)
    get_run_logger().info("service health: %s", health)
    return health


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# No retries: a retry would record the check twice and could trigger a second retraining run.
@task(name="decide-and-trigger-retraining", cache_policy=NO_CACHE)
def decide_and_trigger(
    settings: Settings,
    window: Window,
    drift: DriftResult | None,
    quality: QualityResult | None,
    scores: PredictionDrift | None,
    health: HealthFigures,
    drift_skipped: str | None = None,
) -> CheckRecord:
    """Record the check; on an alert, notify, and start retraining when the decision asks for it.
    ``drift_skipped`` says why drift was not judged (too few rows) when quality or health still alert."""
    policy, model = settings.monitoring, settings.mlflow.registered_model
    logger = get_run_logger()
    history = CheckHistory(settings.monitoring_state_url)
    last = history.last(model)
    last_trigger = history.last_trigger(model)
    decision = decide_alert(
        drift,
        quality,
        policy,
        last_check=last,
        last_episode_triggered=last is not None and history.episode_triggered(model, last.episode),
        last_trigger_at=last_trigger.checked_at if last_trigger else None,
        now=window[1],
        prediction_drift=scores,
        health=health,
    )
    record = CheckRecord(
        checked_at=window[1],
        model=model,
        window_start=window[0],
        window_end=window[1],
        status=decision.status,
        drift_share=drift.drift_share if drift else None,
        quality_drop=quality.drop if quality else None,
        episode=decision.episode,
        retraining_alert=decision.cause is not None,
        reason=decision.reason + (f"; drift not judged: {drift_skipped}" if drift_skipped else ""),
    )
    if decision.alert:
        logger.warning("ALERT %s: %s", model, record.reason)
        _notify(policy.alert_webhook_url, record)
    if decision.held_back:
        record.reason += f"; {decision.held_back}"
    elif decision.triggers_retraining:
        record.retraining_run_id = _trigger_retraining(policy.retraining_deployment, record, decision.cause)
        record.triggered = True
        logger.warning("triggered %s: flow run %s", policy.retraining_deployment, record.retraining_run_id)
    record.id = history.record(record)
    return record


def _notify(url: str | None, record: CheckRecord) -> None:
    if not url:
        return
    try:
        httpx.post(url, json=record.model_dump(mode="json"), timeout=10).raise_for_status()
    except httpx.HTTPError as exc:  # an unreachable webhook must not hide the alert or stop the trigger
        get_run_logger().error("alert webhook failed: %s", exc)


def _retraining_reason(cause: str, record: CheckRecord) -> str:
    """What the retraining run is named after, e.g. "drift (share 0.56)"."""
    if cause == "drift" and record.drift_share is not None:
        return f"{cause} (share {record.drift_share:.2f})"
    if cause == "quality drop" and record.quality_drop is not None:
        return f"{cause} ({record.quality_drop:.3f})"
    return cause


def _trigger_retraining(deployment: str, record: CheckRecord, cause: str) -> str:
    reason = _retraining_reason(cause, record)
    try:
        run = run_deployment(
            name=deployment,
            parameters={"reason": reason},
            timeout=0,
            as_subflow=False,
            flow_run_name=f"retrain after {reason}",
            tags=["triggered-by-monitoring", cause.replace(" ", "-")],
        )
    except ObjectNotFound as exc:
        raise MonitoringError(
            f"retraining deployment {deployment!r} not found; apply prefect.yaml with `prefect deploy`"
        ) from exc
    return str(run.id)


@task(name="publish-monitoring-summary", cache_policy=NO_CACHE)
def publish_monitoring_summary(
    record: CheckRecord,
    reference: Reference,
    sample: WindowSample,
    drift: DriftResult,
    qualities: list[QualityResult],
    scores: PredictionDrift,
    health: HealthFigures,
    report: str,
) -> None:
    create_markdown_artifact(
        key="monitoring-check",
        markdown=monitoring_markdown(record, reference, sample, drift, qualities, scores, health, report),
        description=f"{record.status}: drift share {drift.drift_share:.2f}",
    )
