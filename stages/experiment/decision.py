"""The A/B decision: promote the challenger, retire it, or collect more rows. Pure functions of the tests' results.

Promote or retire only on an always-valid interval clear of zero; no difference by the maximum sample keeps the
champion; when the A/B and shadow comparisons disagree, collect more. A sample-ratio mismatch of the A/B split
blocks every decision, the shadow comparison's too: the assignment is in question until it is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_core.settings import ExperimentSettings
from stages.experiment.results import ExperimentAction, SampleRatio, SequentialTest, VariantComparison


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
    test: SequentialTest | None,
    rows: tuple[int, int],
    policy: ExperimentSettings,
    sample_ratio: SampleRatio | None = None,
) -> ComparisonVerdict:
    """Promote or retire only on an always-valid interval clear of zero; no difference by the maximum keeps the
    champion; a sample-ratio mismatch decides nothing."""
    if sample_ratio is not None and sample_ratio.mismatch:
        return ComparisonVerdict("collect", [f"sample ratio mismatch: {sample_ratio}; fix the assignment first"])
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
    """One decision from the A/B and shadow evaluations; when they disagree, or the A/B split mismatches, collect."""
    mismatched = [e for e in evaluations if e.sample_ratio is not None and e.sample_ratio.mismatch]
    if mismatched:
        return ExperimentVerdict("collect", " | ".join(e.evidence for e in mismatched))
    decided = {e.decision for e in evaluations} - {"collect"}
    if len(decided) != 1:
        why = "the A/B and shadow evaluations disagree" if decided else "no decision yet"
        evidence = " | ".join(e.evidence for e in evaluations) or "no logged challenger rows"
        return ExperimentVerdict("collect", f"{why}: {evidence}")
    decision = decided.pop()
    return ExperimentVerdict(decision, " | ".join(e.evidence for e in evaluations if e.decision == decision))
