"""What an A/B or shadow evaluation finds: per-variant figures, the sequential test, the comparison and the
experiment's outcome."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

ExperimentAction = Literal["promote", "retire", "collect"]


class Interval(BaseModel):
    value: float
    lower: float
    upper: float


class VariantSummary(BaseModel):
    """ML metrics and ``business_value``: the mean value of one decision by the cost matrix (settings)."""

    variant: str
    model_version: int
    rows: int
    accuracy: Interval
    roc_auc: Interval
    log_loss: Interval
    business_value: Interval


class SampleRatio(BaseModel):
    """The A/B split observed against the configured challenger share (``stages.experiment.srm``)."""

    champion_rows: int
    challenger_rows: int
    expected_share: float
    observed_share: float
    p_value: float
    alpha: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.alpha

    def __str__(self) -> str:
        verdict = "MISMATCH, no decision" if self.mismatch else "as configured"
        return (
            f"split {self.challenger_rows}/{self.champion_rows + self.challenger_rows} to the challenger "
            f"({self.observed_share:.1%} vs {self.expected_share:.1%} configured, SRM p={self.p_value:.2g}): {verdict}"
        )


class SequentialTest(BaseModel):
    """``improvement`` > 0 means the challenger is better, whatever the metric's direction."""

    metric: str
    paired: bool
    improvement: float
    lower: float
    upper: float
    alpha: float
    mixing_sd: float


class VariantComparison(BaseModel):
    """One comparison of challenger and champion rows (A/B groups, or shadow pairs) and what it decided."""

    kind: Literal["ab", "shadow"]
    champion: VariantSummary
    challenger: VariantSummary
    test: SequentialTest | None
    decision: ExperimentAction
    reasons: list[str]
    sample_ratio: SampleRatio | None = None  # A/B only: shadow rows answer the champion's own requests

    @property
    def evidence(self) -> str:
        """One line for the audit log: what was compared, how, and the result."""
        parts = [
            f"{self.kind}: challenger v{self.challenger.model_version} ({self.challenger.rows} rows) vs champion "
            f"v{self.champion.model_version} ({self.champion.rows} rows)"
        ]
        if self.sample_ratio is not None and not self.sample_ratio.mismatch:
            parts.append(str(self.sample_ratio))
        if self.test is not None:
            t = self.test
            parts.append(
                f"{t.metric} improvement {t.improvement:+.4f}, always-valid {1 - t.alpha:.0%} interval "
                f"[{t.lower:+.4f}, {t.upper:+.4f}] (mSPRT{', paired' if t.paired else ''}, tau {t.mixing_sd})"
            )
        return "; ".join(parts + self.reasons)


class ExperimentOutcome(BaseModel):
    """What the evaluation flow concluded and whether it acted on it."""

    champion: int | None
    challenger: int | None
    decision: ExperimentAction
    applied: bool
    evidence: str
    evaluations: list[VariantComparison] = []
