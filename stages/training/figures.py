"""The evaluation figures of candidates on the holdout: ROC and precision-recall curves, reliability diagram,
confusion matrix.

Figures are built with matplotlib's object API on the Agg canvas, never through ``pyplot``: pyplot keeps
global state that is neither thread-safe (candidates are logged from the flow's worker threads) nor freed
without an explicit close, and needs no display.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

# Artifact names on the run, under ``figures/``; the MLflow run page shows them as images.
ROC_CURVE = "roc_curve.png"
PRECISION_RECALL_CURVE = "precision_recall_curve.png"
RELIABILITY_DIAGRAM = "reliability_diagram.png"
FIGURE_DIR = "figures"
# Small and light: a page of thumbnails, not print figures; rendering stays in milliseconds per figure.
_SIZE = (4.5, 4.0)
_DPI = 80
_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
_RELIABILITY_BINS = 10
_THRESHOLD = 0.5  # the threshold accuracy and F1 are taken at (stages.training.metrics)

Scores = Mapping[str, tuple[np.ndarray, np.ndarray]]  # name -> (0/1 truth, positive-class probability)


def _blank() -> tuple[Figure, Axes]:
    figure = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    """Axes of probabilities or rates, 0 to 1 both ways."""
    figure, axes = _blank()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01))
    axes.set(xticks=_TICKS, yticks=_TICKS)
    axes.grid(alpha=0.3)
    return figure, axes


def roc_figure(scores: Scores) -> Figure:
    figure, axes = _figure("ROC curve (holdout)", "false positive rate", "true positive rate")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, (truth, probability) in scores.items():
        fpr, tpr, _ = roc_curve(truth, probability)
        axes.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    axes.legend(loc="lower right", fontsize="small")
    return figure


def precision_recall_figure(scores: Scores) -> Figure:
    figure, axes = _figure("Precision-recall curve (holdout)", "recall", "precision")
    for name, (truth, probability) in scores.items():
        precision, recall, _ = precision_recall_curve(truth, probability)
        axes.plot(recall, precision, label=f"{name} (AP {average_precision_score(truth, probability):.3f})")
    base_rate = float(np.mean(next(iter(scores.values()))[0]))
    axes.axhline(base_rate, linestyle=":", color="grey", label=f"base rate {base_rate:.3f}")
    axes.legend(loc="upper right", fontsize="small")
    return figure


def reliability_figure(scores: Scores) -> Figure:
    figure, axes = _figure("Reliability diagram (holdout)", "mean predicted probability", "observed positive rate")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, (truth, probability) in scores.items():
        observed, predicted = calibration_curve(truth, probability, n_bins=_RELIABILITY_BINS, strategy="uniform")
        axes.plot(predicted, observed, marker="o", markersize=3, label=name)
    axes.legend(loc="upper left", fontsize="small")
    return figure


def confusion_matrix_name(candidate: str) -> str:
    return f"confusion_matrix_{candidate}.png"


def confusion_figure(name: str, truth: np.ndarray, probability: np.ndarray) -> Figure:
    matrix = confusion_matrix(truth, (probability >= _THRESHOLD).astype(int), labels=[0, 1])
    figure, axes = _blank()
    figure.subplots_adjust(left=0.22, bottom=0.14)
    axes.imshow(matrix, cmap="Blues")
    axes.set(
        title=f"Confusion matrix at {_THRESHOLD} ({name})",
        xlabel="predicted",
        ylabel="actual",
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["negative", "positive"],
        yticklabels=["negative", "positive"],
    )
    for (row, column), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axes.text(column, row, f"{count:,}", ha="center", va="center", color="white" if dark else "black")
    return figure


def evaluation_figures(scores: Scores) -> dict[str, Figure]:
    """The figures of the candidates on one holdout, keyed by artifact file name: the curves of all candidates
    on the same axes (one figure each, so they compare at a glance) and one confusion matrix per candidate."""
    figures = {
        ROC_CURVE: roc_figure(scores),
        PRECISION_RECALL_CURVE: precision_recall_figure(scores),
        RELIABILITY_DIAGRAM: reliability_figure(scores),
    }
    for name, (truth, probability) in scores.items():
        figures[confusion_matrix_name(name)] = confusion_figure(name, truth, probability)
    return figures
