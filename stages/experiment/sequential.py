"""The always-valid test behind every A/B and shadow decision.

The decision rests on a **mixture sequential probability ratio test** (mSPRT; Johari, Pekelis and Walsh,
"Always valid inference", 2017) of the difference in a per-row score (log loss by default, also Brier score or
accuracy). Why: the evaluation flow runs again and again on a growing log, and a fixed-horizon test checked at
every run declares a false winner far more often than its nominal level. The mSPRT's confidence sequence
``delta ± sqrt(V (V + tau²) / tau² · (ln((V + tau²) / V) + 2 ln(1 / alpha)))`` (V the variance of the observed
difference, tau the mixing scale) holds at every sample size at once with probability 1 - alpha, so any run may
decide on it. A fixed minimum sample size alone would need the effect size known in advance and forbid stopping
early on a clear result; a minimum per variant is still required so the variance estimate is sound, and a
maximum ends an experiment that found no difference worth having (the champion stays).

A/B rows are two independent groups; shadow rows are the challenger's answers to the champion's own requests,
so the difference is taken row by row (paired), which cancels the variance the two share. ROC AUC is reported
with a bootstrap interval but is not the tested score: it is not a mean over rows, which the test needs. Rows
are the unit: with sticky assignment, rows of one caller are correlated, so intervals are somewhat optimistic
when few callers send many rows each.
"""

from __future__ import annotations

import math

import numpy as np

from mlops_core.settings import ExperimentSettings
from stages.experiment.results import SequentialTest

_EPS = 1e-15


def per_row_gain(metric: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A per-row score where higher is better: minus log loss, minus Brier score, or 1 for a correct label."""
    if metric == "accuracy":
        return ((p >= 0.5) == (y == 1)).astype(float)
    if metric == "brier":
        return -((p - y) ** 2)
    q = np.clip(p, _EPS, 1 - _EPS)
    return y * np.log(q) + (1 - y) * np.log(1 - q)


def confidence_sequence(delta: float, variance: float, alpha: float, mixing_sd: float) -> tuple[float, float]:
    """The mSPRT's always-valid interval for a difference observed as ``delta`` with ``variance``."""
    if variance <= 0:
        return delta, delta
    tau2 = mixing_sd**2
    half = math.sqrt(
        variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) + 2 * math.log(1 / alpha))
    )
    return delta - half, delta + half


def sequential_test(
    champion: np.ndarray, challenger: np.ndarray, *, paired: bool, metric: str, policy: ExperimentSettings
) -> SequentialTest:
    """Test on per-row gains: two independent groups (A/B), or one group of row-by-row differences (shadow)."""
    if paired:
        diff = challenger - champion
        delta, variance = float(diff.mean()), float(diff.var(ddof=1) / len(diff))
    else:
        delta = float(challenger.mean() - champion.mean())
        variance = float(challenger.var(ddof=1) / len(challenger) + champion.var(ddof=1) / len(champion))
    lower, upper = confidence_sequence(delta, variance, policy.alpha, policy.mixing_sd)
    return SequentialTest(
        metric=metric,
        paired=paired,
        improvement=delta,
        lower=lower,
        upper=upper,
        alpha=policy.alpha,
        mixing_sd=policy.mixing_sd,
    )
