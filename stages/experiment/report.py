"""The A/B evaluation's Prefect artifact: per-variant figures with intervals, the test, and the decision."""

from __future__ import annotations

from stages.experiment.results import ExperimentOutcome


def markdown(outcome: ExperimentOutcome) -> str:
    """The Prefect artifact: per-variant figures with intervals, the test, and the decision or recommendation."""
    verb = (
        "applied" if outcome.applied else "recommended (automatic decisions are off: `MLOPS_EXPERIMENT__AUTO_DECIDE`)"
    )
    lines = [
        f"# Challenger v{outcome.challenger} vs champion v{outcome.champion}: **{outcome.decision}**, {verb}",
        "",
        outcome.evidence,
    ]
    for e in outcome.evaluations:
        lines += [
            "",
            f"## {e.kind}",
            "",
            "| variant | version | rows | value per decision | accuracy | ROC AUC | log loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in (e.champion, e.challenger):
            value = s.business_value
            cells = [f"{m.value:.4f} [{m.lower:.4f}, {m.upper:.4f}]" for m in (s.accuracy, s.roc_auc, s.log_loss)]
            lines.append(
                f"| {s.variant} | {s.model_version} | {s.rows} | {value.value:.2f} [{value.lower:.2f}, {value.upper:.2f}] | "
                + " | ".join(cells)
                + " |"
            )
        if e.sample_ratio is not None:
            lines += ["", f"Sample ratio: {e.sample_ratio}"]
        if e.test is not None:
            lines += [
                "",
                f"Always-valid test ({e.test.metric}, mSPRT): improvement {e.test.improvement:+.4f} "
                f"in [{e.test.lower:+.4f}, {e.test.upper:+.4f}] → **{e.decision}**: {'; '.join(e.reasons)}",
            ]
    return "\n".join(lines)
