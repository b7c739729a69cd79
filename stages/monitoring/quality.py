"""Model quality on labels, on the labels' own clock, per model version and variant.

Ground truth arrives long after the prediction (a loan's outcome, weeks later), so the rows scored are not
the check's window of predictions but the predictions whose ground truth arrived within the rolling label
window (``label_window_hours``), each joined back to its own version and variant. A version's rows are never
mixed with another's, and only the champion's own rows (its version, served as the champion) are judged
against the champion's holdout: the other groups are reported, never alerted on. A group is judged only when
some of its labels arrived since the last check, so stale labels do not re-alert a quiet model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mlops_core.prediction_log import VARIANT_CHAMPION, VARIANT_SHADOW, predictions
from mlops_core.settings import MonitoringSettings
from stages.monitoring.window import positive_class


@dataclass
class QualityResult:
    labelled_rows: int
    current: dict[str, float]
    holdout: dict[str, float]
    drop: float
    version: int = 0
    variant: str = VARIANT_CHAMPION
    new_labels: int = 0


def labelled_predictions(engine: Engine, model: str, since: datetime, until: datetime) -> pd.DataFrame:
    """Predictions whose ground truth arrived in [since, until) (a row without its arrival time: at its
    prediction's), with version, variant, arrival time, truth and the positive class's probability."""
    arrived = func.coalesce(predictions.c.ground_truth_ts, predictions.c.ts)
    query = select(
        predictions.c.model_version,
        predictions.c.variant,
        arrived.label("label_ts"),
        predictions.c.ground_truth,
        predictions.c.probabilities,
    ).where(
        predictions.c.model_name == model,
        predictions.c.ground_truth.is_not(None),
        predictions.c.variant != VARIANT_SHADOW,
        arrived >= since,
        arrived < until,
    )
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame(rows, columns=["model_version", "variant", "label_ts", "ground_truth", "probabilities"])
    probabilities = [p if isinstance(p, dict) else {} for p in frame["probabilities"]]
    positive = positive_class(probabilities)
    frame["label_ts"] = pd.to_datetime(frame["label_ts"], utc=True)
    frame["truth"] = (frame["ground_truth"].astype(str) == positive).astype(int)
    frame["probability"] = [float(p.get(positive, np.nan)) for p in probabilities]
    return frame.drop(columns=["ground_truth", "probabilities"])


def quality_by_group(
    labelled: pd.DataFrame,
    champion_version: int,
    holdout_metrics: dict[str, float],
    policy: MonitoringSettings,
    new_since: datetime,
) -> list[QualityResult]:
    """ROC AUC and accuracy per (version, variant) with enough labels, some of them new since ``new_since``;
    the drop against the holdout only for the champion's own rows (other versions: their figures only)."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    results = []
    known = labelled[labelled["probability"].notna()]
    for (version, variant), group in known.groupby(["model_version", "variant"], sort=True):
        new_labels = int((group["label_ts"] >= pd.Timestamp(new_since)).sum())
        if len(group) < policy.min_labelled_rows or not new_labels or group["truth"].nunique() < 2:
            continue
        truth, probability = group["truth"].to_numpy(), group["probability"].to_numpy()
        current = {
            "roc_auc": float(roc_auc_score(truth, probability)),
            "accuracy": float(accuracy_score(truth, (probability >= 0.5).astype(int))),
        }
        is_champion = int(version) == champion_version and variant == VARIANT_CHAMPION
        holdout = (
            {k: holdout_metrics[k] for k in ("roc_auc", "accuracy") if k in holdout_metrics} if is_champion else {}
        )
        drop = holdout.get("roc_auc", current["roc_auc"]) - current["roc_auc"]
        results.append(QualityResult(len(group), current, holdout, float(drop), int(version), str(variant), new_labels))
    return results


def champion_quality(results: list[QualityResult], champion_version: int) -> QualityResult | None:
    """The result the alert is decided on: the champion version's rows served as the champion."""
    found = [r for r in results if r.version == champion_version and r.variant == VARIANT_CHAMPION]
    return found[0] if found else None
