"""The model card of a newly registered version as the gate left it: the training stage's card filled with
bootstrap intervals of the holdout metrics and the promotion gate's decision.

It lives with the promotion stage because it needs both stages (``stages.promotion`` imports
``stages.training``, never the other way round).
"""

from __future__ import annotations

import numpy as np

from stages.data.loading import LoadedData
from stages.data.validation import ValidationOutcome
from stages.promotion.aliases import PromotionDecision
from stages.promotion.report import decision_markdown, decision_title
from stages.promotion.statistics import metric_intervals
from stages.training.candidates import Candidate, Split
from stages.training.metrics import METRIC_ORDER, positive_truth
from stages.training.model_card import (
    MetricInterval,
    ModelCard,
    known_limitations,
    segment_metrics,
    training_window,
)
from stages.training.tracking import RegisteredVersion


def holdout_intervals(
    best: Candidate, split: Split, *, confidence: float, resamples: int, max_rows: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the best candidate's holdout metrics, from at most ``max_rows`` holdout rows (the
    gate's own budget). Seconds of CPU at 20,000 rows: the flow measures them beside the MLflow log."""
    truth = positive_truth(best.pipeline, split.y_holdout)
    sample = np.random.default_rng(seed).permutation(len(truth))[:max_rows]
    return metric_intervals(
        truth[sample], best.holdout_probability[sample], resamples=resamples, confidence=confidence, seed=seed
    )


def build_model_card(
    *,
    version: RegisteredVersion,
    decision: PromotionDecision,
    best: Candidate,
    bounds: dict[str, tuple[float, float]],
    split: Split,
    data: LoadedData,
    validation: ValidationOutcome,
    timestamp: str | None,
    intended_use: str,
    confidence: float,
) -> ModelCard:
    """The card of ``best`` with its ``holdout_intervals`` (``bounds``) and segments from every holdout row."""
    truth = positive_truth(best.pipeline, split.y_holdout)
    probability = best.holdout_probability
    point = {metric: best.metrics[metric] for metric in METRIC_ORDER if metric in best.metrics}
    window = training_window(data.frame, data.files, timestamp)
    segments = segment_metrics(split.x_holdout, truth, probability, split.categorical_columns)
    return ModelCard(
        model=version.name,
        version=version.version,
        semver=version.semver,
        candidate=best.name,
        target=data.target,
        intended_use=intended_use,
        window=window,
        data_digest=data.digest,
        train_rows=len(split.x_train),
        holdout_rows=len(split.x_holdout),
        split=split.strategy,
        validation=validation.summary(),
        primary_metric=version.primary_metric,
        confidence=confidence,
        intervals={metric: MetricInterval(point[metric], *bounds[metric]) for metric in bounds if metric in point},
        point_metrics=point,
        segments=segments,
        gate_outcome=decision_title(decision),
        gate_decision=decision_markdown(decision),
        run_id=version.run_id,
        limitations=known_limitations(window, point, segments),
    )
