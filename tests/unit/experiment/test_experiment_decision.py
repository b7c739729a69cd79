"""The A/B decision, case by case: per comparison (the always-valid interval and the sample bounds) and overall."""

import pytest

from mlops_core.settings import ExperimentSettings
from stages.experiment.decision import decide_comparison, decide_experiment
from stages.experiment.results import Interval, SequentialTest, VariantComparison, VariantSummary

POLICY = ExperimentSettings(min_samples=200, max_samples=5000)


def interval(lower: float, upper: float) -> SequentialTest:
    return SequentialTest(
        metric="log_loss",
        paired=False,
        improvement=(lower + upper) / 2,
        lower=lower,
        upper=upper,
        alpha=0.05,
        mixing_sd=0.1,
    )


@pytest.mark.parametrize(
    ("case", "test", "rows", "action", "says"),
    [
        ("no test yet", None, (500, 500), "collect", "needed before any decision"),
        ("too few rows in one group", interval(0.1, 0.2), (500, 199), "collect", "199 labelled rows"),
        ("interval above zero", interval(0.01, 0.05), (500, 500), "promote", "better"),
        ("interval below zero", interval(-0.05, -0.01), (500, 500), "retire", "worse"),
        ("interval contains zero", interval(-0.01, 0.01), (500, 500), "collect", "contains zero"),
        ("contains zero at the maximum", interval(-0.01, 0.01), (5000, 6000), "retire", "keep the champion"),
        ("clear result before the maximum wins", interval(0.01, 0.02), (5000, 6000), "promote", "better"),
    ],
)
def test_comparison_cases(case, test, rows, action, says):
    verdict = decide_comparison(test, rows, POLICY)
    assert verdict.action == action, case
    assert says in verdict.reasons[0], case


def comparison(kind: str, decision: str) -> VariantComparison:
    figure = Interval(value=0.5, lower=0.4, upper=0.6)
    summary = VariantSummary(variant=kind, model_version=1, rows=300, accuracy=figure, roc_auc=figure, log_loss=figure)
    return VariantComparison(
        kind=kind, champion=summary, challenger=summary, test=None, decision=decision, reasons=[decision]
    )


@pytest.mark.parametrize(
    ("case", "decisions", "action"),
    [
        ("nothing logged", [], "collect"),
        ("A/B promotes", [("ab", "promote")], "promote"),
        ("A/B and shadow agree", [("ab", "retire"), ("shadow", "retire")], "retire"),
        ("one decides, one collects", [("ab", "promote"), ("shadow", "collect")], "promote"),
        ("they disagree", [("ab", "promote"), ("shadow", "retire")], "collect"),
        ("both collect", [("ab", "collect"), ("shadow", "collect")], "collect"),
    ],
)
def test_experiment_cases(case, decisions, action):
    verdict = decide_experiment([comparison(kind, decision) for kind, decision in decisions])
    assert verdict.action == action, case
    if case == "they disagree":
        assert verdict.evidence.startswith("the A/B and shadow evaluations disagree")
