"""Drift over time: the figures of every check as metric series of one long-lived MLflow run per registered model,
with the check time (Unix seconds) as the step, so MLflow's run page charts each one across checks; and a plot of
the series attached to each check's own run beside its Evidently report."""

from __future__ import annotations

from datetime import UTC, datetime

from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend on a worker

from stages.monitoring.drift import DriftResult, PredictionDrift
from stages.monitoring.quality import QualityResult

TREND_RUN_TAG = "mlops.trend_of"  # on the long-lived run: the registered model whose checks it charts
TREND_FIGURE = "drift_over_time.png"
Series = dict[str, list[tuple[datetime, float]]]


def trend_run_name(model: str) -> str:
    return f"drift over time: {model}"


def check_step(checked_at: datetime) -> int:
    """The step of a check's figures: its time in Unix seconds (MLflow steps are integers)."""
    return int(checked_at.timestamp())


def step_time(step: int) -> datetime:
    return datetime.fromtimestamp(step, UTC)


def trend_metrics(drift: DriftResult, scores: PredictionDrift, quality: QualityResult | None) -> dict[str, float]:
    """One check's points: drift share, each column's PSI, the score PSI and the champion's labelled quality."""
    metrics = {
        "drift_share": drift.drift_share,
        **{f"psi.{name}": score for name, score in drift.scores.items()},
        "score_psi": scores.psi,
    }
    if quality:
        metrics.update({f"quality.{k}": v for k, v in quality.current.items()}, quality_drop=quality.drop)
    return metrics


def trend_figure(series: Series, model: str) -> Figure:
    """Drift share and score PSI, each column's PSI, and quality, against the check time."""
    columns = {k: v for k, v in series.items() if k.startswith("psi.")}
    panels = [
        ("drift share and score PSI", {k: series[k] for k in ("drift_share", "score_psi") if k in series}),
        ("PSI per column", columns),
        ("quality on labelled rows", {k: v for k, v in series.items() if k.startswith("quality.")}),
    ]
    figure = Figure(figsize=(9, 9))
    axes = figure.subplots(len(panels), 1, sharex=True)
    for ax, (title, lines) in zip(axes, panels, strict=True):
        for name, points in sorted(lines.items()):
            ax.plot([t for t, _ in points], [v for _, v in points], marker="o", label=name.removeprefix("psi."))
        ax.set_title(title)
        if lines:
            ax.legend(fontsize="x-small", ncol=3)
    axes[-1].set_xlabel("check time (UTC)")
    figure.suptitle(f"{model}: drift over time")
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
