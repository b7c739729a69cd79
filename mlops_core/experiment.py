"""Champion against challenger on served traffic: logged predictions joined with ground truth, per variant.

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
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

from mlops_core.comparison import weighted_metric
from mlops_core.settings import ExperimentSettings

Decision = Literal["promote", "retire", "collect"]
_EPS = 1e-15


class Interval(BaseModel):
    value: float
    lower: float
    upper: float


class VariantSummary(BaseModel):
    variant: str
    model_version: int
    rows: int
    accuracy: Interval
    roc_auc: Interval
    log_loss: Interval


class SequentialTest(BaseModel):
    """``improvement`` > 0 means the challenger is better, whatever the metric's direction."""

    metric: str
    paired: bool
    improvement: float
    lower: float
    upper: float
    alpha: float
    mixing_sd: float


class Evaluation(BaseModel):
    kind: Literal["ab", "shadow"]
    champion: VariantSummary
    challenger: VariantSummary
    test: SequentialTest | None
    decision: Decision
    reasons: list[str]

    @property
    def evidence(self) -> str:
        """One line for the audit log: what was compared, how, and the result."""
        parts = [
            f"{self.kind}: challenger v{self.challenger.model_version} ({self.challenger.rows} rows) vs champion "
            f"v{self.champion.model_version} ({self.champion.rows} rows)"
        ]
        if self.test is not None:
            t = self.test
            parts.append(
                f"{t.metric} improvement {t.improvement:+.4f}, always-valid {1 - t.alpha:.0%} interval "
                f"[{t.lower:+.4f}, {t.upper:+.4f}] (mSPRT{', paired' if t.paired else ''}, tau {t.mixing_sd})"
            )
        return "; ".join(parts + self.reasons)


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


def summarise(
    variant: str, version: int, y: np.ndarray, p: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> VariantSummary:
    """Point values with fixed-sample intervals (normal for means, bootstrap for ROC AUC): a description, not the test."""
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
    )


def decide(
    test: SequentialTest | None, rows: tuple[int, int], policy: ExperimentSettings
) -> tuple[Decision, list[str]]:
    """Promote or retire only on an always-valid interval clear of zero; no difference by the maximum keeps the champion."""
    fewest = min(rows)
    if test is None or fewest < policy.min_samples:
        return "collect", [
            f"{fewest} labelled rows in the smaller group; {policy.min_samples} needed before any decision"
        ]
    if test.lower > 0:
        return "promote", [f"the challenger is better on {test.metric}: the interval lies above zero"]
    if test.upper < 0:
        return "retire", [f"the challenger is worse on {test.metric}: the interval lies below zero"]
    if fewest >= policy.max_samples:
        return "retire", [
            f"no difference on {test.metric} after {fewest} rows per variant ({policy.max_samples} is the most): keep the champion"
        ]
    return "collect", [f"no decision yet on {test.metric}: the interval contains zero"]


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ground truth, with ``y`` (1 for the positive class, the model's last) and its probability ``p``."""
    rows = frame[frame["ground_truth"].notna()].copy()
    positive = rows["probabilities"].map(lambda probs: list(probs)[-1])
    rows["p"] = [probs[label] for probs, label in zip(rows["probabilities"], positive, strict=True)]
    rows["y"] = (rows["ground_truth"].astype(str) == positive).astype(int)
    return rows


def evaluate(log: pd.DataFrame, champion: int, challenger: int, policy: ExperimentSettings) -> list[Evaluation]:
    """An A/B and a shadow evaluation of ``challenger`` against ``champion``, for whichever has rows."""
    versions = log["model_version"].astype(int)
    served_by_challenger = log[(log["variant"] == "challenger") & (versions == challenger)]
    shadow = log[(log["variant"] == "shadow") & (versions == challenger)]
    champion_rows = log[(log["variant"] == "champion") & (versions == champion)]
    evaluations = []
    if len(served_by_challenger):
        since = served_by_challenger["ts"].min()  # the same period and traffic for both groups
        evaluations.append(
            _evaluate(
                "ab",
                labelled(champion_rows[champion_rows["ts"] >= since]),
                labelled(served_by_challenger),
                champion,
                challenger,
                policy,
            )
        )
    if len(shadow):
        # A shadow row's ground truth is that of the champion answer it shadows.
        truth = champion_rows.set_index("prediction_id")["ground_truth"]
        pairs = shadow.assign(ground_truth=shadow["paired_id"].map(truth))
        paired = labelled(pairs)
        originals = labelled(champion_rows[champion_rows["prediction_id"].isin(paired["paired_id"])])
        originals = originals.set_index("prediction_id").loc[paired["paired_id"]].reset_index()
        evaluations.append(_evaluate("shadow", originals, paired, champion, challenger, policy))
    return evaluations


def _evaluate(
    kind: str, champ: pd.DataFrame, chal: pd.DataFrame, champion: int, challenger: int, policy: ExperimentSettings
) -> Evaluation:
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
    decision, reasons = decide(test, (len(champ), len(chal)), policy)
    return Evaluation(
        kind=kind,
        champion=summarise("champion", champion, champ["y"].to_numpy(), champ["p"].to_numpy()),
        challenger=summarise(
            kind if kind == "shadow" else "challenger", challenger, chal["y"].to_numpy(), chal["p"].to_numpy()
        ),
        test=test,
        decision=decision,
        reasons=reasons,
    )


def overall(evaluations: list[Evaluation]) -> tuple[Decision, str]:
    """One decision from the A/B and shadow evaluations; when they disagree, collect more."""
    decided = {e.decision for e in evaluations} - {"collect"}
    if len(decided) != 1:
        why = "the A/B and shadow evaluations disagree" if decided else "no decision yet"
        evidence = " | ".join(e.evidence for e in evaluations) or "no logged challenger rows"
        return "collect", f"{why}: {evidence}"
    decision = decided.pop()
    return decision, " | ".join(e.evidence for e in evaluations if e.decision == decision)


class ExperimentOutcome(BaseModel):
    """What the evaluation flow concluded and whether it acted on it."""

    champion: int | None
    challenger: int | None
    decision: Decision
    applied: bool
    evidence: str
    evaluations: list[Evaluation] = []


def markdown(outcome: ExperimentOutcome) -> str:
    """The Prefect artifact: per-variant figures with intervals, the test, and the decision or recommendation."""
    verb = (
        "applied" if outcome.applied else "recommended (automatic decisions are off: `MLOPS_EXPERIMENT__AUTO_DECIDE`)"
    )
    lines = [
        f"# Challenger v{outcome.challenger} vs champion v{outcome.champion}: **{outcome.decision}**, {verb}",
        "",
        outcome.evidence,
    ]
    for e in outcome.evaluations:
        lines += [
            "",
            f"## {e.kind}",
            "",
            "| variant | version | rows | accuracy | ROC AUC | log loss |",
            "|---|---|---|---|---|---|",
        ]
        for s in (e.champion, e.challenger):
            cells = [f"{m.value:.4f} [{m.lower:.4f}, {m.upper:.4f}]" for m in (s.accuracy, s.roc_auc, s.log_loss)]
            lines.append(f"| {s.variant} | {s.model_version} | {s.rows} | " + " | ".join(cells) + " |")
        if e.test is not None:
            lines += [
                "",
                f"Always-valid test ({e.test.metric}, mSPRT): improvement {e.test.improvement:+.4f} "
                f"in [{e.test.lower:+.4f}, {e.test.upper:+.4f}] → **{e.decision}**: {'; '.join(e.reasons)}",
            ]
    return "\n".join(lines)
