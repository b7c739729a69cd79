"""Model quality on the window's rows whose ground truth arrived, against the version's holdout figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops_core.settings import MonitoringSettings
from stages.monitoring.window import WindowSample


@dataclass
class QualityResult:
    labelled_rows: int
    current: dict[str, float]
    holdout: dict[str, float]
    drop: float


def quality_against_holdout(
    sample: WindowSample, holdout_metrics: dict[str, float], policy: MonitoringSettings
) -> QualityResult | None:
    """ROC AUC and accuracy on rows whose ground truth arrived, against the version's holdout figures."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    if sample.labels is None or len(sample.labels) < policy.min_labelled_rows:
        return None
    known = sample.positive_probability.notna()
    truth, probability = sample.labels[known].to_numpy(), sample.positive_probability[known].to_numpy()
    if len(np.unique(truth)) < 2:
        return None
    current = {
        "roc_auc": float(roc_auc_score(truth, probability)),
        "accuracy": float(accuracy_score(truth, (probability >= 0.5).astype(int))),
    }
    holdout = {k: holdout_metrics[k] for k in ("roc_auc", "accuracy") if k in holdout_metrics}
    drop = holdout.get("roc_auc", current["roc_auc"]) - current["roc_auc"]
    return QualityResult(labelled_rows=int(known.sum()), current=current, holdout=holdout, drop=float(drop))
