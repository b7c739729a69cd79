"""The monitoring check's summary, left as a Prefect artifact."""

from __future__ import annotations

from stages.monitoring.drift import DriftResult
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import QualityResult
from stages.monitoring.reference import Reference
from stages.monitoring.window import WindowSample


def monitoring_markdown(
    record: CheckRecord,
    reference: Reference,
    sample: WindowSample,
    drift: DriftResult,
    quality: QualityResult | None,
    security: dict[str, int],
    report: str,
) -> str:
    """The check's verdict, the drifted columns, quality where labels arrived, and security events."""
    lines = [
        f"# Monitoring {record.model} v{reference.version} ({reference.semver}): {record.status.upper()}",
        "",
        f"- Window: {record.window_start:%Y-%m-%d %H:%M} .. {record.window_end:%Y-%m-%d %H:%M} UTC, "
        f"{sample.rows_in_window:,} rows logged, {sample.rows:,} checked, {sample.malformed:,} malformed skipped",
        f"- Decision: {record.reason}",
        f"- Retraining: {'triggered, flow run ' + record.retraining_run_id if record.triggered else 'not triggered'}",
        f"- Drift share: {drift.drift_share:.2f} ({len(drift.drifted_columns)} of {len(drift.scores)} columns)",
        f"- Evidently report: {report}",
        "",
        "| drifted column | PSI |",
        "|---|---|",
        *(f"| {name} | {score:.3f} |" for name, score in drift.drifted_columns.items()),
    ]
    if quality:
        lines += [
            "",
            f"Quality on {quality.labelled_rows} labelled rows: "
            + ", ".join(
                f"{k} {v:.3f} (holdout {quality.holdout.get(k, float('nan')):.3f})" for k, v in quality.current.items()
            ),
        ]
    lines += ["", "Security events in the window: " + (", ".join(f"{k}: {v}" for k, v in security.items()) or "none")]
    return "\n".join(lines)
