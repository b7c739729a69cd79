"""The A/B decision, case by case: per comparison (the always-valid interval and the sample bounds) and overall."""

import pytest

from mlops_core.settings import ExperimentSettings
from stages.experiment.decision import decide_comparison, decide_experiment
from stages.experiment.results import Interval, SequentialTest, VariantComparison, VariantSummary
from stages.experiment.srm import sample_ratio_test

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


@pytest.mark.parametrize(
    ("case", "served", "share", "action", "says"),
    [
        ("a mismatch blocks a clear result", (5000, 4000), 0.5, "collect", "sample ratio mismatch"),
        ("a sound split lets it decide", (5000, 4900), 0.5, "promote", "better"),
        ("a sound 10 % split", (9000, 1000), 0.1, "promote", "better"),
        ("rows to a challenger configured to get none", (9000, 10), 0.0, "collect", "sample ratio mismatch"),
    ],
)
def test_sample_ratio_cases(case, served, share, action, says):
    split = sample_ratio_test(*served, share, POLICY.srm_alpha)
    verdict = decide_comparison(interval(0.01, 0.05), (500, 500), POLICY, split)
    assert verdict.action == action, case
    assert says in verdict.reasons[0], case


def comparison(kind: str, decision: str) -> VariantComparison:
    figure = Interval(value=0.5, lower=0.4, upper=0.6)
    summary = VariantSummary(
        variant=kind, model_version=1, rows=300, accuracy=figure, roc_auc=figure, log_loss=figure, business_value=figure
    )
    split = sample_ratio_test(300, 300 if decision != "mismatch" else 200, 0.5, POLICY.srm_alpha)
    return VariantComparison(
        kind=kind,
        champion=summary,
        challenger=summary,
        test=None,
        decision="collect" if decision == "mismatch" else decision,
        reasons=[decision],
        sample_ratio=split if kind == "ab" else None,
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
        ("an A/B split mismatch blocks the shadow's decision", [("ab", "mismatch"), ("shadow", "promote")], "collect"),
    ],
)
def test_experiment_cases(case, decisions, action):
    verdict = decide_experiment([comparison(kind, decision) for kind, decision in decisions])
    assert verdict.action == action, case
    if case == "they disagree":
        assert verdict.evidence.startswith("the A/B and shadow evaluations disagree")
