"""The promotion gate: does a candidate replace the champion? A pure decision on scores of shared rows.

A version replaces the champion only when, on the same evaluation rows (the new version's holdout, scored
by both models), the primary metric improves by the configured margin with a paired bootstrap lower bound
above zero, and no guard metric regresses beyond its tolerance. The first model must clear an absolute floor.
When the improvement was established elsewhere (an A/B test on served traffic), only the guards decide: the
holdout comparison of the primary metric is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlops_core.settings import PromotionSettings
from stages.promotion.statistics import paired_bootstrap
from stages.training.metrics import LOWER_IS_BETTER, probability_metrics

BOOTSTRAP_METHOD = "paired bootstrap (Poisson weights)"


@dataclass
class GateVerdict:
    """What the gate found: whether the candidate passes, why, and the figures behind it."""

    passes: bool
    reasons: list[str]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    test: dict[str, float | str | int] | None = field(default=None)


def regression(metric: str, candidate: float, champion: float) -> float:
    """How much worse the candidate is (positive = worse), in the metric's own units."""
    return candidate - champion if metric in LOWER_IS_BETTER else champion - candidate


def first_model_verdict(candidate_metrics: dict[str, float], floor: dict[str, float]) -> GateVerdict:
    """With no champion, the candidate must clear every absolute floor."""
    passes = True
    reasons = []
    for metric, bound in floor.items():
        value = candidate_metrics[metric]
        ok = value <= bound if metric in LOWER_IS_BETTER else value >= bound
        passes &= ok
        reasons.append(f"first model: {metric} {value:.4f} {'clears' if ok else 'is below'} the floor {bound}")
    return GateVerdict(passes=passes, reasons=reasons, candidate_metrics=candidate_metrics)


def gate(
    truth: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    policy: PromotionSettings,
    improvement_shown_by: str | None = None,
) -> GateVerdict:
    """The verdict on one candidate, both models scored on the same rows (``champion`` None: no champion yet);
    ``improvement_shown_by`` the evidence that the candidate is better when that comes from elsewhere."""
    cand_metrics = probability_metrics(truth, candidate)
    if champion is None:
        return first_model_verdict(cand_metrics, policy.floor)

    champ_metrics = probability_metrics(truth, champion)
    primary = policy.primary_metric
    test = paired_bootstrap(
        truth,
        candidate,
        champion,
        metric=primary,
        resamples=policy.bootstrap_resamples,
        confidence=policy.confidence,
    )
    improves = test.improvement >= policy.min_improvement and test.improvement > 0
    significant = test.significant
    reasons = [
        f"{primary}: {cand_metrics[primary]:.4f} vs champion {champ_metrics[primary]:.4f}, "
        f"improvement {test.improvement:+.4f} (margin {policy.min_improvement}); "
        f"{test.confidence:.0%} lower bound {test.lower:+.4f} "
        f"({'significant' if significant else 'not significant'}, paired bootstrap, {test.resamples} resamples)"
    ]
    passes = improves and significant
    if improvement_shown_by:
        reasons.insert(0, f"improvement shown by {improvement_shown_by}; on the holdout only the guards decide")
        passes = True
    for metric, tolerance in policy.guard_tolerances.items():
        worse_by = regression(metric, cand_metrics[metric], champ_metrics[metric])
        ok = worse_by <= tolerance
        passes &= ok
        if not ok:
            reasons.append(f"guard {metric} regresses by {worse_by:.4f} > tolerance {tolerance}")
    test_record = {
        "method": BOOTSTRAP_METHOD,
        "metric": primary,
        "improvement": test.improvement,
        "lower_bound": test.lower,
        "upper_bound": test.upper,
        "confidence": test.confidence,
        "resamples": test.resamples,
    }
    return GateVerdict(passes, reasons, cand_metrics, champ_metrics, test_record)
