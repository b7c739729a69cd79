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
    variant: str
    model_version: int
    rows: int
    accuracy: Interval
    roc_auc: Interval
    log_loss: Interval


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

    @property
    def evidence(self) -> str:
        """One line for the audit log: what was compared, how, and the result."""
        parts = [
            f"{self.kind}: challenger v{self.challenger.model_version} ({self.challenger.rows} rows) vs champion "
            f"v{self.champion.model_version} ({self.champion.rows} rows)"
        ]
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
