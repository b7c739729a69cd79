"""The generator's drift scenarios do what they claim: checked by fitting a model on 40,000 rows (too slow for the
unit loop)."""

from datetime import date, timedelta

import pandas as pd

from stages.data.generator import ENTITY_ID, TARGET, TIMESTAMP, Scenario, generate_day

DAY = date(2026, 11, 1)


def _stale_model_scores(train: pd.DataFrame, *tests: pd.DataFrame) -> list[tuple[float, float]]:
    """(ROC AUC, mean predicted minus observed default rate) of a model fitted on ``train``, per test frame."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    features = [c for c in train.columns if c not in (TARGET, ENTITY_ID, TIMESTAMP)]
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(train[features], train[TARGET])
    scores = []
    for test in tests:
        probability = model.predict_proba(test[features])[:, 1]
        scores.append((roc_auc_score(test[TARGET], probability), float(probability.mean() - test[TARGET].mean())))
    return scores


def _frames(scenario: Scenario) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A day of the reference population, the next day of it, and the first day under ``scenario``."""
    return (
        generate_day(DAY, 40_000),
        generate_day(DAY + timedelta(days=1), 40_000),
        generate_day(DAY, 40_000, scenario=scenario),
    )


def test_covariate_drift_moves_features_but_keeps_the_label_relation():
    base, fresh, drifted = _frames("covariate")
    assert drifted["credit_score"].mean() < base["credit_score"].mean() - 30
    assert drifted["debt_to_income"].mean() > base["debt_to_income"].mean() + 0.05
    assert drifted[TARGET].mean() > base[TARGET].mean() + 0.15
    # P(default | features) is unchanged: the old model still ranks well and explains most of the higher rate.
    (auc_fresh, _), (auc_drifted, gap) = _stale_model_scores(base, fresh, drifted)
    assert auc_drifted > auc_fresh - 0.03
    assert abs(gap) < 0.05


def test_concept_drift_changes_the_label_relation_not_the_features():
    base, fresh, concept = _frames("concept")
    assert abs(concept["credit_score"].mean() - base["credit_score"].mean()) < 3
    assert abs(concept["debt_to_income"].mean() - base["debt_to_income"].mean()) < 0.01
    # The old model loses much of its ranking power: the risk drivers changed.
    (auc_fresh, _), (auc_concept, _) = _stale_model_scores(base, fresh, concept)
    assert auc_concept < auc_fresh - 0.05


def test_covariate_and_concept_drift_moves_features_and_changes_the_label_relation():
    base, fresh, both = _frames("covariate_and_concept")
    assert both["credit_score"].mean() < base["credit_score"].mean() - 30
    assert both["debt_to_income"].mean() > base["debt_to_income"].mean() + 0.05
    (auc_fresh, _), (auc_both, _) = _stale_model_scores(base, fresh, both)
    assert auc_both < auc_fresh - 0.05
