"""Champion against challenger on served traffic: logged predictions joined with ground truth, per variant.

A/B rows are two independent groups; shadow rows are the challenger's answers to the champion's own requests,
so the difference is taken row by row (paired), which cancels the variance the two share. ROC AUC is reported
with a bootstrap interval but is not the tested score: it is not a mean over rows, which the test
(``stages.experiment.sequential``) needs. Rows are the unit: with sticky assignment, rows of one caller are
correlated, so intervals are somewhat optimistic when few callers send many rows each.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from mlops_core.prediction_log import VARIANT_CHALLENGER, VARIANT_CHAMPION, VARIANT_SHADOW
from mlops_core.settings import ExperimentSettings
from stages.experiment.decision import decide_comparison
from stages.experiment.results import Interval, SampleRatio, VariantComparison, VariantSummary
from stages.experiment.sequential import per_row_gain, sequential_test
from stages.experiment.srm import sample_ratio_test
from stages.promotion.statistics import weighted_metric


def decision_values(y: np.ndarray, p: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """The business value of each row's decision by the cost matrix: a row is approved when the model predicts
    the negative class (for the loan model: no default), and ``y`` says whether the positive outcome came."""
    approved = p < 0.5
    return np.select(
        [approved & (y == 0), approved & (y == 1), ~approved & (y == 0)],
        [values["approved_good"], values["approved_bad"], values["declined_good"]],
        default=values["declined_bad"],
    ).astype(float)


def summarise(
    variant: str,
    version: int,
    y: np.ndarray,
    p: np.ndarray,
    outcome_values: dict[str, float],
    confidence: float = 0.95,
    seed: int = 0,
) -> VariantSummary:
    """Point values with fixed-sample intervals (normal for means, bootstrap for ROC AUC): a description, not the
    test. ``business_value`` is the mean value per decision by ``outcome_values``, the cost matrix."""
    z = stats.norm.ppf(0.5 + confidence / 2)

    def mean_interval(values: np.ndarray) -> Interval:
        half = z * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.inf
        return Interval(
            value=float(values.mean()), lower=float(values.mean() - half), upper=float(values.mean() + half)
        )

    weights = np.random.default_rng(seed).poisson(1.0, size=(200, len(y))).astype(float)
    ones = np.ones((1, len(y)))
    auc = weighted_metric("roc_auc", y, p, ones)[0]
    boot = weighted_metric("roc_auc", y, p, weights)
    boot = boot[~np.isnan(boot)]
    tail = (1 - confidence) / 2
    auc_interval = np.quantile(boot, [tail, 1 - tail]) if len(boot) else [np.nan, np.nan]
    return VariantSummary(
        variant=variant,
        model_version=version,
        rows=len(y),
        accuracy=mean_interval(per_row_gain("accuracy", y, p)),
        roc_auc=Interval(value=float(auc), lower=float(auc_interval[0]), upper=float(auc_interval[1])),
        log_loss=mean_interval(-per_row_gain("log_loss", y, p)),
        business_value=mean_interval(decision_values(y, p, outcome_values)),
    )


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ground truth, with ``y`` (1 for the positive class, the model's last) and its probability ``p``."""
    rows = frame[frame["ground_truth"].notna()].copy()
    positive = rows["probabilities"].map(lambda probs: list(probs)[-1])
    rows["p"] = [probs[label] for probs, label in zip(rows["probabilities"], positive, strict=True)]
    rows["y"] = (rows["ground_truth"].astype(str) == positive).astype(int)
    return rows


def compare_variants(
    log: pd.DataFrame, champion: int, challenger: int, policy: ExperimentSettings, challenger_share: float
) -> list[VariantComparison]:
    """An A/B and a shadow evaluation of ``challenger`` against ``champion``, for whichever has rows; the A/B
    split (all served rows, labelled or not) is checked against ``challenger_share``, the configured one."""
    versions = log["model_version"].astype(int)
    served_by_challenger = log[(log["variant"] == VARIANT_CHALLENGER) & (versions == challenger)]
    shadow = log[(log["variant"] == VARIANT_SHADOW) & (versions == challenger)]
    champion_rows = log[(log["variant"] == VARIANT_CHAMPION) & (versions == champion)]
    evaluations = []
    if len(served_by_challenger):
        since = served_by_challenger["ts"].min()  # the same period and traffic for both groups
        champion_since = champion_rows[champion_rows["ts"] >= since]
        split = sample_ratio_test(len(champion_since), len(served_by_challenger), challenger_share, policy.srm_alpha)
        evaluations.append(
            _compare(
                "ab",
                labelled(champion_since),
                labelled(served_by_challenger),
                champion,
                challenger,
                policy,
                split,
            )
        )
    if len(shadow):
        # A shadow row's ground truth is that of the champion answer it shadows.
        truth = champion_rows.set_index("prediction_id")["ground_truth"]
        pairs = shadow.assign(ground_truth=shadow["paired_id"].map(truth))
        paired = labelled(pairs)
        originals = labelled(champion_rows[champion_rows["prediction_id"].isin(paired["paired_id"])])
        originals = originals.set_index("prediction_id").loc[paired["paired_id"]].reset_index()
        evaluations.append(_compare("shadow", originals, paired, champion, challenger, policy))
    return evaluations


def _compare(
    kind: str,
    champ: pd.DataFrame,
    chal: pd.DataFrame,
    champion: int,
    challenger: int,
    policy: ExperimentSettings,
    sample_ratio: SampleRatio | None = None,
) -> VariantComparison:
    metric = policy.decision_metric
    test = None
    if min(len(champ), len(chal)) >= 2:
        test = sequential_test(
            per_row_gain(metric, champ["y"].to_numpy(), champ["p"].to_numpy()),
            per_row_gain(metric, chal["y"].to_numpy(), chal["p"].to_numpy()),
            paired=kind == "shadow",
            metric=metric,
            policy=policy,
        )
    verdict = decide_comparison(test, (len(champ), len(chal)), policy, sample_ratio)
    values = policy.outcome_values
    return VariantComparison(
        kind=kind,
        champion=summarise("champion", champion, champ["y"].to_numpy(), champ["p"].to_numpy(), values),
        challenger=summarise(
            kind if kind == "shadow" else "challenger", challenger, chal["y"].to_numpy(), chal["p"].to_numpy(), values
        ),
        test=test,
        decision=verdict.action,
        reasons=verdict.reasons,
        sample_ratio=sample_ratio,
    )
