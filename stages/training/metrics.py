"""The metrics every candidate, gate and check is scored by, and which direction of each is better."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from mlops_core.settings import MetricName

LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier", "ece"})
# The order reports list the metrics in.
METRIC_ORDER = ("roc_auc", "accuracy", "f1", "log_loss", "brier", "ece")


def expected_calibration_error(y_true: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted probability and observed rate over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(probability[mask].mean() - y_true[mask].mean())
    return float(total)


def probability_metrics(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Metrics of positive-class probabilities against 0/1 truth, at the 0.5 threshold where one is needed."""
    predicted = (probability >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(truth, probability)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth, predicted)),
        "log_loss": float(log_loss(truth, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(truth, probability)),
        "ece": expected_calibration_error(truth, probability),
    }


def positive_truth(pipeline: Pipeline, y: pd.Series) -> np.ndarray:
    """Labels as 0/1, with 1 for the class the pipeline treats as positive (its second class)."""
    return (y.to_numpy() == pipeline.classes_[1]).astype(int)


def holdout_metrics(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """The fitted pipeline's metrics on held-out rows."""
    return probability_metrics(positive_truth(pipeline, y), pipeline.predict_proba(x)[:, 1])


def better(metric: MetricName, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b
