"""The promotion gate's cases, one row each: inputs chosen so the verdict is known in advance."""

import numpy as np
import pytest

from mlops_core.settings import PromotionSettings
from stages.promotion.gate import first_model_verdict, gate, regression

RNG = np.random.default_rng(42)
N = 4000
TRUTH = (RNG.random(N) < 0.3).astype(int)


def _scores(noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(TRUTH * 2.0 - 1 + rng.normal(0, noise * 2, N))))


SHARP, BLURRED = _scores(0.6, 1), _scores(1.2, 2)
OVERCONFIDENT = np.clip(np.where(_scores(0.5, 3) > 0.5, _scores(0.5, 3) ** 0.1, _scores(0.5, 3) ** 8), 1e-6, 1 - 1e-6)
CALIBRATED = _scores(0.6, 4)
FEW_RESAMPLES = PromotionSettings(guard_tolerances={}, bootstrap_resamples=100)  # the bootstrap is not the point


@pytest.mark.parametrize(
    ("case", "candidate", "champion", "policy", "passes", "reason"),
    [
        ("clearly better", SHARP, BLURRED, PromotionSettings(guard_tolerances={}), True, "(significant"),
        ("equal", SHARP, SHARP.copy(), PromotionSettings(), False, "not significant"),
        ("worse", BLURRED, SHARP, PromotionSettings(guard_tolerances={}), False, "improvement -"),
        (
            "better, short of the margin",
            SHARP,
            BLURRED,
            PromotionSettings(min_improvement=0.5, guard_tolerances={}),
            False,
            "margin 0.5",
        ),
        (
            "better, a guard regresses",
            OVERCONFIDENT,
            CALIBRATED,
            PromotionSettings(guard_tolerances={"log_loss": 0.01}),
            False,
            "guard log_loss regresses",
        ),
        (
            "first model over the floor",
            SHARP,
            None,
            PromotionSettings(floor={"roc_auc": 0.6}),
            True,
            "clears the floor 0.6",
        ),
        (
            "first model under the floor",
            SHARP,
            None,
            PromotionSettings(floor={"roc_auc": 0.99}),
            False,
            "is below the floor 0.99",
        ),
    ],
)
def test_gate_cases(case, candidate, champion, policy, passes, reason):
    verdict = gate(TRUTH, candidate, champion, policy)
    assert verdict.passes is passes, (case, verdict.reasons)
    assert any(reason in r for r in verdict.reasons), (case, verdict.reasons)
    assert (verdict.test is None) is (champion is None)


@pytest.mark.parametrize(
    ("case", "candidate", "champion", "policy", "passes", "reason"),
    [
        ("worse on the holdout, no guard set", BLURRED, SHARP, FEW_RESAMPLES, True, "shown by an A/B"),
        (
            "a guard regresses",
            OVERCONFIDENT,
            CALIBRATED,
            FEW_RESAMPLES.model_copy(update={"guard_tolerances": {"log_loss": 0.01}}),
            False,
            "guard log_loss regresses",
        ),
    ],
)
def test_an_improvement_shown_elsewhere_leaves_the_guards_to_decide(case, candidate, champion, policy, passes, reason):
    verdict = gate(TRUTH, candidate, champion, policy, improvement_shown_by="an A/B test")
    assert verdict.passes is passes, (case, verdict.reasons)
    assert any(reason in r for r in verdict.reasons), (case, verdict.reasons)
    assert (verdict.test is None) is (champion is None)


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "worse_by"),
    [
        ("roc_auc", 0.80, 0.82, 0.02),
        ("roc_auc", 0.85, 0.82, -0.03),
        ("log_loss", 0.50, 0.45, 0.05),
        ("ece", 0.01, 0.02, -0.01),
    ],
)
def test_regression_is_positive_when_worse_whatever_the_direction(metric, candidate, champion, worse_by):
    assert regression(metric, candidate, champion) == pytest.approx(worse_by)


def test_a_lower_is_better_floor_is_an_upper_bound():
    assert first_model_verdict({"log_loss": 0.4}, {"log_loss": 0.5}).passes
    assert not first_model_verdict({"log_loss": 0.6}, {"log_loss": 0.5}).passes
