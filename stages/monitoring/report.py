"""The monitoring check's summary, left as a Prefect artifact."""

from __future__ import annotations

from stages.monitoring.drift import DriftResult, PredictionDrift
from stages.monitoring.health import HealthFigures
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import QualityResult
from stages.monitoring.reference import Reference
from stages.monitoring.window import WindowSample


def monitoring_markdown(
    record: CheckRecord,
    reference: Reference,
    sample: WindowSample,
    drift: DriftResult,
    qualities: list[QualityResult],
    scores: PredictionDrift,
    health: HealthFigures,
    report: str,
) -> str:
    """The check's verdict, the drifted columns, score drift, quality per version where labels arrived, and the
    service's health."""
    lines = [
        f"# Monitoring {record.model} v{reference.version} ({reference.semver}): {record.status.upper()}",
        "",
        f"- Window: {record.window_start:%Y-%m-%d %H:%M} .. {record.window_end:%Y-%m-%d %H:%M} UTC, "
        f"{sample.rows_in_window:,} rows logged, {sample.rows:,} checked, {sample.malformed:,} malformed skipped",
        f"- Decision: {record.reason}",
        f"- Retraining: {_retraining(record)}",
        f"- Drift share: {drift.drift_share:.2f} ({len(drift.drifted_columns)} of {len(drift.scores)} columns)",
        f"- Score PSI: {scores.psi:.3f} (null's critical value {scores.critical_value:.3f} at {scores.rows:,} rows)",
        f"- Evidently report (its own bins, no correction for the window size): {report}",
        "",
        "| drifted column | PSI | critical value at this window size |",
        "|---|---|---|",
        *(
            f"| {name} | {score:.3f} | {drift.critical_values.get(name, float('nan')):.3f} |"
            for name, score in drift.drifted_columns.items()
        ),
        "",
        "| version | variant | labelled rows (new) | ROC AUC | accuracy | holdout ROC AUC |",
        "|---|---|---|---|---|---|",
        *(
            f"| v{q.version} | {q.variant} | {q.labelled_rows} ({q.new_labels}) | {q.current['roc_auc']:.3f} | "
            f"{q.current['accuracy']:.3f} | {q.holdout.get('roc_auc', float('nan')):.3f} |"
            for q in qualities
        ),
        "",
        f"Service: {health.requests:,} requests, p99 latency "
        + (f"{health.latency_p99_ms:.0f} ms" if health.latency_p99_ms is not None else "n/a")
        + f", 4xx {health.client_error_rate:.1%}, 5xx {health.server_error_rate:.1%}, "
        f"429 {health.rate_limited_rate:.1%}; in the busiest hour {health.refused_keys_per_hour} refused keys, "
        f"{health.rate_limited_per_hour} rate-limit refusals",
    ]
    return "\n".join(lines)


def _retraining(record: CheckRecord) -> str:
    if not record.triggered:
        return "not triggered"
    return f"requested by event {record.retraining_event_id}; the retraining deployment's trigger starts the run"
