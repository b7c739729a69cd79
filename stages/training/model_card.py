"""The model card of a registered version: what it is for, what it learnt from, how well it does and where not.

Plain functions of values: the task around them reads the holdout, the gate's decision and the registry, and
writes the card to the training run and the link into the version's description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from stages.training.metrics import LOWER_IS_BETTER

# Run artifact the card is written to; the version's description links to it.
MODEL_CARD_ARTIFACT = "model_card.md"
# Levels of a categorical column beyond the most frequent ones are pooled into one segment.
MAX_SEGMENTS_PER_COLUMN = 10
# Segment metrics on fewer holdout rows than this are listed but flagged as too thin to rely on.
MIN_SEGMENT_ROWS = 100
# A segment whose ROC AUC falls this far below the model's overall value is named as a known weakness.
WEAK_SEGMENT_AUC_GAP = 0.05
# Expected calibration error above which the card warns that probabilities are not to be read literally.
CALIBRATION_WARNING_ECE = 0.02
MISSING_SEGMENT = "(missing)"
OTHER_SEGMENT = "(other)"


@dataclass(frozen=True)
class MetricInterval:
    """A holdout metric with a two-sided bootstrap interval at the card's confidence."""

    value: float
    lower: float
    upper: float


@dataclass(frozen=True)
class SegmentMetrics:
    """The model on the holdout rows of one level of one categorical column."""

    column: str
    segment: str
    rows: int
    positive_rate: float
    mean_probability: float
    roc_auc: float | None  # None when the segment's rows hold one class only
    brier: float

    @property
    def thin(self) -> bool:
        return self.rows < MIN_SEGMENT_ROWS


@dataclass(frozen=True)
class ModelCard:
    model: str
    version: int
    semver: str
    candidate: str
    target: str
    intended_use: str
    window: str
    data_digest: str
    train_rows: int
    holdout_rows: int
    split: str
    validation: str
    primary_metric: str
    confidence: float
    intervals: dict[str, MetricInterval]
    point_metrics: dict[str, float]
    segments: list[SegmentMetrics]
    gate_outcome: str  # one line, e.g. "loan-default v3 (1.2.0) promoted to `champion`"
    gate_decision: str  # the gate's decision report (markdown)
    run_id: str
    limitations: list[str] = field(default_factory=list)


def training_window(frame: pd.DataFrame, files: list[str], timestamp: str | None) -> str:
    """The data window in words: the time span when rows are time-stamped, and the files read."""
    names = [name.rsplit("/", 1)[-1] for name in files]
    read = names[0] if len(names) == 1 else f"{len(names)} files, {names[0]} to {names[-1]}"
    if timestamp and timestamp in frame.columns and len(frame):
        stamps = pd.to_datetime(frame[timestamp])
        return f"{stamps.min():%Y-%m-%d %H:%M} to {stamps.max():%Y-%m-%d %H:%M} ({read})"
    return read


def segment_metrics(
    rows: pd.DataFrame,
    truth: np.ndarray,
    probability: np.ndarray,
    columns: list[str],
    max_segments: int = MAX_SEGMENTS_PER_COLUMN,
) -> list[SegmentMetrics]:
    """Per level of each categorical column: size, observed and predicted positive rate, ROC AUC and Brier score.

    The most frequent ``max_segments`` levels are kept and the rest pooled as ``(other)``, so a high-cardinality
    column gives a table a person can read; missing values are their own segment.
    """
    truth = np.asarray(truth).astype(int)
    probability = np.asarray(probability, dtype=float)
    segments: list[SegmentMetrics] = []
    for column in columns:
        levels = rows[column].astype("object").where(rows[column].notna(), MISSING_SEGMENT).astype(str)
        frequent = levels.value_counts().index[:max_segments]
        levels = levels.where(levels.isin(frequent), OTHER_SEGMENT).to_numpy()
        for level in sorted(set(levels), key=lambda lv: (lv == OTHER_SEGMENT, -np.sum(levels == lv), lv)):
            mask = levels == level
            y, p = truth[mask], probability[mask]
            segments.append(
                SegmentMetrics(
                    column=column,
                    segment=level,
                    rows=int(mask.sum()),
                    positive_rate=float(y.mean()),
                    mean_probability=float(p.mean()),
                    roc_auc=float(roc_auc_score(y, p)) if len(set(y)) == 2 else None,
                    brier=float(brier_score_loss(y, p, labels=[0, 1])),
                )
            )
    return segments


def known_limitations(window: str, point_metrics: dict[str, float], segments: list[SegmentMetrics]) -> list[str]:
    """What a user of the model should know before relying on it, from its own numbers."""
    limits = [
        f"Learnt from {window} only: rows unlike that window (new categories, values outside the training "
        "ranges, a changed population) are scored without warning; the monitoring flow watches for drift.",
        "Accuracy and F1 are taken at a 0.5 probability threshold; choose the threshold a decision needs "
        "from the precision-recall curve on the training run.",
    ]
    if (ece := point_metrics.get("ece")) is not None and ece > CALIBRATION_WARNING_ECE:
        limits.append(
            f"Probabilities are off by {ece:.3f} on average (expected calibration error); "
            "see the reliability diagram before reading them as rates."
        )
    overall = point_metrics.get("roc_auc")
    if overall is not None:
        weak = [
            s for s in segments if not s.thin and s.roc_auc is not None and s.roc_auc < overall - WEAK_SEGMENT_AUC_GAP
        ]
        limits += [
            f"Weaker on {s.column} = {s.segment}: ROC AUC {s.roc_auc:.3f} against {overall:.3f} overall "
            f"({s.rows:,} holdout rows)."
            for s in weak
        ]
    thin = [f"{s.column} = {s.segment}" for s in segments if s.thin]
    if thin:
        limits.append(f"Too few holdout rows (under {MIN_SEGMENT_ROWS}) to judge: " + ", ".join(thin) + ".")
    return limits


def _interval_table(card: ModelCard) -> list[str]:
    lines = [
        f"| metric | holdout | {card.confidence:.0%} interval |",
        "|---|---|---|",
    ]
    for metric, value in card.point_metrics.items():
        direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        interval = card.intervals.get(metric)
        bounds = f"{interval.lower:.4f} to {interval.upper:.4f}" if interval else "n/a"
        primary = " **(primary)**" if metric == card.primary_metric else ""
        lines.append(f"| {metric}{primary}{direction} | {value:.4f} | {bounds} |")
    return lines


def _segment_table(segments: list[SegmentMetrics]) -> list[str]:
    lines = [
        "| column | segment | holdout rows | observed rate | mean predicted | ROC AUC | Brier |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in segments:
        auc = f"{s.roc_auc:.3f}" if s.roc_auc is not None else "n/a (one class)"
        flag = " (few rows)" if s.thin else ""
        lines.append(
            f"| {s.column} | {s.segment}{flag} | {s.rows:,} | {s.positive_rate:.3f} | {s.mean_probability:.3f} "
            f"| {auc} | {s.brier:.4f} |"
        )
    return lines


def model_card_markdown(card: ModelCard) -> str:
    gate = [
        line.replace("# ", "### ", 1) if line.startswith("# ") else line for line in card.gate_decision.splitlines()
    ]
    lines = [
        f"# Model card: {card.model} v{card.version} (semver {card.semver})",
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
        "## Training data",
        "",
        f"- Window: {card.window}",
        f"- Digest: `{card.data_digest}`",
        f"- Rows: {card.train_rows:,} for training, {card.holdout_rows:,} held out ({card.split})",
        f"- Validation: {card.validation}",
        f"- Target: `{card.target}`; model: `{card.candidate}`; training run: `{card.run_id}`",
        "",
        "## Metrics on the holdout",
        "",
        *_interval_table(card),
        "",
        "## Metrics per segment",
        "",
        *(_segment_table(card.segments) if card.segments else ["The data has no categorical columns."]),
        "",
        "## Known limitations",
        "",
        *(f"- {limit}" for limit in card.limitations),
        "",
        "## The promotion gate's decision",
        "",
        *gate,
    ]
    return "\n".join(lines) + "\n"


def version_description(card: ModelCard, card_link: str) -> str:
    """The registry page's description of the version: one paragraph and the link to its card."""
    primary = card.intervals.get(card.primary_metric)
    score = f"{card.point_metrics[card.primary_metric]:.4f}"
    if primary:
        score += f" ({card.confidence:.0%} interval {primary.lower:.4f} to {primary.upper:.4f})"
    return (
        f"`{card.candidate}` predicting `{card.target}`, trained on {card.window}, data digest "
        f"`{card.data_digest[:12]}`. Holdout {card.primary_metric}: {score}. Gate: {card.gate_outcome}."
        f"\n\n[Model card]({card_link}): intended use, metrics with intervals and per segment, known limitations."
    )
