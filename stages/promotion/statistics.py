"""Comparing two models scored on the same rows: point metrics and a paired bootstrap of the difference.

Why a paired bootstrap and not McNemar: McNemar tests accuracy at one threshold, while the primary metric
here is usually ROC AUC (a ranking metric) or a proper score such as log loss. Resampling the holdout rows
and scoring both models on the same resample gives a confidence interval for the difference of any of them,
and pairing removes the row-to-row variance the two models share. Resamples are drawn as Poisson(1) weights
(the standard large-sample bootstrap), which lets every metric be computed for many resamples at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.training.metrics import LOWER_IS_BETTER

BOOTSTRAP_METRICS = ("roc_auc", "accuracy", "log_loss", "brier")
_EPS = 1e-15
_CHUNK = 100


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - baseline`` oriented so that positive always means the candidate is better."""

    metric: str
    improvement: float
    lower: float
    upper: float
    confidence: float
    resamples: int

    @property
    def significant(self) -> bool:
        return self.lower > 0


def _weighted_auc(y: np.ndarray, order: np.ndarray, ranks_tied: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (resamples x rows), ties counted as one half.

    Rows are pre-sorted by score once; per resample it is a cumulative sum, O(rows).
    """
    w = weights[:, order]
    positive = y[order].astype(bool)
    neg_w = np.where(positive, 0.0, w)
    pos_w = np.where(positive, w, 0.0)
    # Negative weight strictly below each row, and within its tie group (counted half).
    cum_neg = np.cumsum(neg_w, axis=1)
    group_start, group_end = ranks_tied
    below = np.where(group_start > 0, cum_neg[:, np.maximum(group_start - 1, 0)], 0.0)
    in_group = cum_neg[:, group_end] - below
    wins = (pos_w * (below + 0.5 * in_group)).sum(axis=1)
    total = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    return np.divide(wins, total, out=np.full(len(w), np.nan), where=total > 0)


def _tie_groups(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position in sorted order, the first and last index of its group of equal scores."""
    new_group = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:] - 1, len(sorted_scores) - 1]
    group = np.cumsum(new_group) - 1
    return starts[group], ends[group]


def weighted_metric(metric: str, y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``metric`` of probabilities ``p`` for labels ``y`` under each weight vector (rows of ``weights``)."""
    if metric == "roc_auc":
        order = np.argsort(p, kind="mergesort")
        return _weighted_auc(y, order, _tie_groups(p[order]), weights)
    if metric == "accuracy":
        per_row = ((p >= 0.5) == (y == 1)).astype(float)
    elif metric == "log_loss":
        q = np.clip(p, _EPS, 1 - _EPS)
        per_row = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    elif metric == "brier":
        per_row = (p - y) ** 2
    else:
        raise ValueError(f"no bootstrap for metric {metric!r}; use one of {BOOTSTRAP_METRICS}")
    return weights @ per_row / weights.sum(axis=1)


def paired_bootstrap(
    y: np.ndarray,
    p_candidate: np.ndarray,
    p_baseline: np.ndarray,
    *,
    metric: str,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """One-sided bounds, at ``confidence`` each, for how much better the candidate is than the baseline."""
    y = np.asarray(y).astype(int)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ones = np.ones((1, len(y)))
    point = sign * float(
        weighted_metric(metric, y, p_candidate, ones)[0] - weighted_metric(metric, y, p_baseline, ones)[0]
    )
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, _CHUNK):
        weights = rng.poisson(1.0, size=(min(_CHUNK, resamples - start), len(y))).astype(float)
        diffs.append(
            sign * (weighted_metric(metric, y, p_candidate, weights) - weighted_metric(metric, y, p_baseline, weights))
        )
    diff = np.concatenate(diffs)
    diff = diff[~np.isnan(diff)]
    alpha = 1 - confidence
    return PairedDifference(
        metric=metric,
        improvement=point,
        lower=float(np.quantile(diff, alpha)),
        upper=float(np.quantile(diff, 1 - alpha)),
        confidence=confidence,
        resamples=len(diff),
    )


def metric_intervals(
    y: np.ndarray,
    p: np.ndarray,
    *,
    metrics: tuple[str, ...] = BOOTSTRAP_METRICS,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Two-sided percentile bootstrap intervals, at ``confidence``, of each metric of one model on its holdout."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {metric: [] for metric in metrics}
    for start in range(0, resamples, _CHUNK):
        weights = rng.poisson(1.0, size=(min(_CHUNK, resamples - start), len(y))).astype(float)
        for metric in metrics:
            draws[metric].append(weighted_metric(metric, y, p, weights))
    alpha = (1 - confidence) / 2
    intervals = {}
    for metric, chunks in draws.items():
        values = np.concatenate(chunks)
        values = values[~np.isnan(values)]
        intervals[metric] = (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
    return intervals
