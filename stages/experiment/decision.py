"""The A/B decision: promote the challenger, retire it, or collect more rows. Pure functions of the tests' results.

Promote or retire only on an always-valid interval clear of zero; no difference by the maximum sample keeps the
champion; when the A/B and shadow comparisons disagree, collect more.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_core.settings import ExperimentSettings
from stages.experiment.results import ExperimentAction, SequentialTest, VariantComparison


@dataclass(frozen=True)
class ComparisonVerdict:
    action: ExperimentAction
    reasons: list[str]


@dataclass(frozen=True)
class ExperimentVerdict:
    """``evidence``: one line for the audit log, the comparisons that support the action."""

    action: ExperimentAction
    evidence: str


def decide_comparison(
    test: SequentialTest | None, rows: tuple[int, int], policy: ExperimentSettings
) -> ComparisonVerdict:
    """Promote or retire only on an always-valid interval clear of zero; no difference by the maximum keeps the champion."""
    fewest = min(rows)
    if test is None or fewest < policy.min_samples:
        return ComparisonVerdict(
            "collect", [f"{fewest} labelled rows in the smaller group; {policy.min_samples} needed before any decision"]
        )
    if test.lower > 0:
        return ComparisonVerdict(
            "promote", [f"the challenger is better on {test.metric}: the interval lies above zero"]
        )
    if test.upper < 0:
        return ComparisonVerdict("retire", [f"the challenger is worse on {test.metric}: the interval lies below zero"])
    if fewest >= policy.max_samples:
        return ComparisonVerdict(
            "retire",
            [
                f"no difference on {test.metric} after {fewest} rows per variant ({policy.max_samples} is the most): keep the champion"
            ],
        )
    return ComparisonVerdict("collect", [f"no decision yet on {test.metric}: the interval contains zero"])


def decide_experiment(evaluations: list[VariantComparison]) -> ExperimentVerdict:
    """One decision from the A/B and shadow evaluations; when they disagree, collect more."""
    decided = {e.decision for e in evaluations} - {"collect"}
    if len(decided) != 1:
        why = "the A/B and shadow evaluations disagree" if decided else "no decision yet"
        evidence = " | ".join(e.evidence for e in evaluations) or "no logged challenger rows"
        return ExperimentVerdict("collect", f"{why}: {evidence}")
    decision = decided.pop()
    return ExperimentVerdict(decision, " | ".join(e.evidence for e in evaluations if e.decision == decision))
