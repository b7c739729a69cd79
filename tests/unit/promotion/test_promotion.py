"""The promotion gate as a pure function, and the champion stack the audit log is read into."""

from __future__ import annotations

import numpy as np

from mlops_core.settings import PromotionSettings
from stages.promotion.audit import AliasMove, champion_stack
from stages.promotion.gate import gate

MODEL = "loan-default"


# --- the gate as a pure function -------------------------------------------------------------------


def _scores(n=4000, seed=0, noise_a=0.8, noise_b=0.8):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    signal = y * 1.0
    a = 1 / (1 + np.exp(-(signal * 2 - 1 + rng.normal(0, noise_a * 2, n))))
    b = 1 / (1 + np.exp(-(signal * 2 - 1 + rng.normal(0, noise_b * 2, n))))
    return y, a, b


def test_gate_promotes_a_clearly_better_model_with_a_significant_paired_test():
    y, better, worse = _scores(noise_a=0.6, noise_b=1.2)
    verdict = gate(y, better, worse, PromotionSettings(guard_tolerances={}))
    assert verdict.passes, verdict.reasons
    assert verdict.candidate_metrics["roc_auc"] > verdict.champion_metrics["roc_auc"]
    assert verdict.test["lower_bound"] > 0 and verdict.test["method"].startswith("paired bootstrap")


def test_gate_keeps_out_an_equal_model():
    y, same, _ = _scores()
    verdict = gate(y, same, same.copy(), PromotionSettings())
    assert not verdict.passes
    assert "not significant" in verdict.reasons[0]


def test_gate_keeps_out_a_worse_model_and_a_tiny_insignificant_gain():
    y, better, worse = _scores(noise_a=0.6, noise_b=1.2)
    assert not gate(y, worse, better, PromotionSettings()).passes
    y, a, b = _scores(n=200, noise_a=0.79, noise_b=0.8)
    assert not gate(y, a, b, PromotionSettings(guard_tolerances={})).passes


def test_gate_margin_and_guard_metrics():
    y, better, worse = _scores(noise_a=0.6, noise_b=1.2)
    assert not gate(y, better, worse, PromotionSettings(min_improvement=0.5, guard_tolerances={})).passes
    # Ranks better, but is badly overconfident: the primary metric improves, the log loss guard stops it.
    y, sharper, calibrated = _scores(noise_a=0.5, noise_b=0.6)
    overconfident = np.clip(np.where(sharper > 0.5, sharper**0.1, sharper**8), 1e-6, 1 - 1e-6)
    policy = PromotionSettings(guard_tolerances={"log_loss": 0.01})
    verdict = gate(y, overconfident, calibrated, policy)
    assert not verdict.passes
    assert "(significant" in verdict.reasons[0]
    assert any(r.startswith("guard log_loss regresses") for r in verdict.reasons)


def test_first_model_needs_the_floor():
    y, good, _ = _scores(noise_a=0.6)
    assert gate(y, good, None, PromotionSettings(floor={"roc_auc": 0.6})).passes
    verdict = gate(y, good, None, PromotionSettings(floor={"roc_auc": 0.99}))
    assert not verdict.passes and "is below the floor 0.99" in verdict.reasons[0]


def test_champion_stack_walks_back_through_rollbacks():
    def move(to, action="promote"):
        return AliasMove(
            model=MODEL, alias="champion", from_version=None, to_version=to, action=action, actor="t", reason=""
        )

    assert champion_stack([move(1), move(2), move(3)]) == [1, 2, 3]
    assert champion_stack([move(1), move(2), move(3), move(2, "rollback")]) == [1, 2]
    assert champion_stack([move(1), move(2), move(3), move(2, "rollback"), move(1, "rollback")]) == [1]
    assert champion_stack([move(1), move(2), move(2, "rollback"), move(4)]) == [1, 2, 4]


# --- against a real MLflow store ---------------------------------------------------------------------
