"""The promotion gate's decision (or a rollback), left as a Prefect artifact."""

from __future__ import annotations

from stages.promotion.aliases import PromotionDecision
from stages.training.metrics import METRIC_ORDER


def decision_title(decision: PromotionDecision) -> str:
    """The decision in one line, e.g. "loan-default v3 (1.2.0) promoted to `champion`"."""
    verb = {"promoted": "promoted to", "forced": "force-promoted to", "rolled-back": "rolled back to", "rejected": ""}
    if decision.moved:
        return f"{decision.model} v{decision.version} ({decision.semver}) {verb[decision.outcome]} `{decision.alias}`"
    return f"{decision.model} v{decision.version} ({decision.semver}) kept out of `{decision.alias}`"


def decision_markdown(decision: PromotionDecision) -> str:
    """The promotion gate's decision (or a rollback) with both models' metrics and the test behind it."""
    lines = [
        f"# {decision_title(decision)}",
        "",
        f"- Previous `{decision.alias}`: {decision.previous_version or 'none'}",
    ]
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
