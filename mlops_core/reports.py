"""Markdown reports left as Prefect artifacts: what a person reads in the UI after a run."""

from __future__ import annotations

from mlops_core.data import LoadedData
from mlops_core.promotion import Decision
from mlops_core.settings import Settings
from mlops_core.tracking import RegisteredVersion
from mlops_core.training import LOWER_IS_BETTER, Candidate, Split
from mlops_core.validation import ValidationOutcome

METRIC_ORDER = ("roc_auc", "accuracy", "f1", "log_loss", "brier", "ece")


def mlflow_links(settings: Settings, version: RegisteredVersion) -> list[str]:
    """Links into the MLflow UI when a tracking server is configured, else the command that opens one."""
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        return [
            f"[MLflow run]({base}/#/experiments/{version.experiment_id}/runs/{version.run_id})",
            f"[Model version]({base}/#/models/{version.name}/versions/{version.version})",
        ]
    return [
        f"MLflow store: `{uri}`; browse it with "
        f"`mlflow ui --backend-store-uri {uri} --host 127.0.0.1` (run `{version.run_id}`)"
    ]


def _metrics_table(candidates: list[Candidate], best: str, primary: str) -> list[str]:
    header = "| candidate | " + " | ".join(METRIC_ORDER) + " | fit s |"
    rows = [header, "|" + "---|" * (len(METRIC_ORDER) + 2)]
    for c in sorted(candidates, key=lambda c: c.metrics[primary], reverse=primary not in LOWER_IS_BETTER):
        mark = " **(chosen)**" if c.name == best else ""
        cells = " | ".join(f"{c.metrics[m]:.4f}" for m in METRIC_ORDER)
        rows.append(f"| {c.name}{mark} | {cells} | {c.fit_seconds:.1f} |")
    return rows


def training_summary_markdown(
    version: RegisteredVersion,
    candidates: list[Candidate],
    validation: ValidationOutcome,
    data: LoadedData,
    split: Split,
    settings: Settings,
) -> str:
    best = version.tags.get("candidate", "")
    lines = [
        f"# Training: {version.name} v{version.version} (semver {version.semver})",
        "",
        f"- Data: {data.rows:,} rows from {len(data.files)} file(s), digest `{data.digest[:16]}`",
        f"- Split: {split.strategy} ({len(split.x_train):,} train / {len(split.x_holdout):,} holdout)",
        f"- Validation: {validation.summary()}",
        *(f"- Data Docs: {url}" for url in validation.data_docs),
        f"- Primary metric: `{version.primary_metric}`",
        "",
        "## Candidates on the holdout",
        "",
        *_metrics_table(candidates, best, version.primary_metric),
        "",
        "## Links",
        "",
        *(f"- {link}" for link in mlflow_links(settings, version)),
        f"- Model URI: `{version.model_uri}`",
    ]
    return "\n".join(lines)


def validation_failure_markdown(outcome: ValidationOutcome) -> str:
    lines = [
        f"# Data validation failed: suite `{outcome.suite}`",
        "",
        f"{len(outcome.failed)} of {outcome.evaluated} expectations failed. Nothing was trained or registered.",
        "",
        "| expectation | column | observed |",
        "|---|---|---|",
        *(f"| {f.type} | {f.column or ''} | {str(f.observed)[:200]} |" for f in outcome.failed),
        "",
        *(f"- Data Docs: {url}" for url in outcome.data_docs),
    ]
    return "\n".join(lines)


def decision_markdown(decision: Decision) -> str:
    """The promotion gate's decision (or a rollback) with both models' metrics and the test behind it."""
    verb = {"promoted": "promoted to", "forced": "force-promoted to", "rolled-back": "rolled back to", "rejected": ""}
    title = (
        f"{decision.model} v{decision.version} ({decision.semver}) {verb[decision.outcome]} `{decision.alias}`"
        if decision.moved
        else f"{decision.model} v{decision.version} ({decision.semver}) kept out of `{decision.alias}`"
    )
    lines = [f"# {title}", "", f"- Previous `{decision.alias}`: {decision.previous_version or 'none'}"]
    lines += [f"- {reason}" for reason in decision.reasons]
    lines.append(f"- By {decision.actor} at {decision.decided_at.isoformat()}")
    if decision.candidate_metrics:
        champion = decision.champion_metrics or {}
        lines += ["", "| metric | this version | champion |", "|---|---|---|"]
        for metric in METRIC_ORDER:
            theirs = f"{champion[metric]:.4f}" if metric in champion else ""
            lines.append(f"| {metric} | {decision.candidate_metrics[metric]:.4f} | {theirs} |")
    if decision.test:
        lines += [
            "",
            "Test: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in decision.test.items()),
        ]
    return "\n".join(lines)


def monitoring_markdown(record, reference, sample, drift, quality, security: dict[str, int], report: str) -> str:
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
