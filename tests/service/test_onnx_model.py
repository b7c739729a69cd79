"""ONNX Runtime serves a candidate pipeline only with scikit-learn's answers; otherwise scikit-learn serves it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from mlops_core.profile import profile_frame
from services import onnx_model
from services.inputs import FieldRule, build_rules, check_row, frame_of
from services.models import ServedModel, runtime_for
from stages.data.generator import generate_day
from stages.training.candidates import fit_candidate, split_holdout
from stages.training.tracking import model_signature

FEATURES_DROPPED = ("defaulted", "applicant_id", "application_ts")


@pytest.fixture(scope="module")
def split_and_profile():
    frame = pd.concat([generate_day(date(2026, 11, d), 1000, seed=2) for d in (1, 2, 3)], ignore_index=True)
    features = [c for c in frame.columns if c not in FEATURES_DROPPED]
    split = split_holdout(
        frame, features=features, target="defaulted", holdout_fraction=0.25, timestamp="application_ts", seed=0
    )
    return split, profile_frame(frame, feature_columns=features, target="defaulted", data_digest="test")


@pytest.fixture(scope="module")
def fitted(split_and_profile):
    """Each candidate's pipeline and the service's field rules for it."""
    split, profile = split_and_profile
    models = {}
    for name in ("logistic_regression", "random_forest", "hist_gradient_boosting"):
        candidate = fit_candidate(name, split, seed=0)
        models[name] = candidate.pipeline, build_rules(model_signature(candidate, split), profile, headroom=0.5)
    return models


def served_rows(rules: list[FieldRule]) -> list[dict]:
    """New generated rows as a client sends them, checked by the service: missing values (about 4 % of incomes
    and credit scores, 3 % of home ownership, more added here), unseen categories, values beyond the ranges."""
    frame = generate_day(date(2026, 12, 1), 400, seed=9).drop(columns=list(FEATURES_DROPPED))
    raw = [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    for i, row in enumerate(raw):
        if i % 7 == 0:
            row["home_ownership"] = None
        if i % 11 == 0:
            row["loan_purpose"] = "crypto"  # never seen in training
        if i % 13 == 0:
            row["annual_income"] = None
        if i % 17 == 0:
            row["credit_score"] = 5000.0  # far outside the training range: flagged, still scored
    checked = [check_row(row, rules, refuse_out_of_range=False) for row in raw]
    assert not [errors for _, errors, _ in checked if errors]
    return [row for row, _, _ in checked]


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest"])
def test_onnx_runtime_gives_scikit_learn_probabilities(fitted, name):
    pipeline, rules = fitted[name]
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == "onnx"
    rows = served_rows(rules)
    assert any(row["home_ownership"] is None for row in rows) and any(np.isnan(row["annual_income"]) for row in rows)
    served = onnx.predict_proba(rows)
    reference = pipeline.predict_proba(frame_of(rows, rules))
    assert served.shape == reference.shape == (len(rows), 2)
    np.testing.assert_allclose(served, reference, rtol=0, atol=onnx_model.TOLERANCE)
    assert (served.argmax(axis=1) == reference.argmax(axis=1)).all()
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_histogram_gradient_boosting_falls_back_to_scikit_learn(fitted):
    """skl2onnx 1.20 writes booleans into an integer attribute of its tree ensemble, which onnx 1.23 refuses."""
    pipeline, rules = fitted["hist_gradient_boosting"]
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert onnx is None
    assert runtime.startswith("scikit-learn (") and "TreeEnsembleClassifier" in runtime


def test_a_graph_that_disagrees_is_not_served(fitted, monkeypatch):
    pipeline, rules = fitted["logistic_regression"]
    monkeypatch.setattr(onnx_model, "TOLERANCE", -1.0)  # no graph can be that close
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert onnx is None and "differs from scikit-learn" in runtime


def test_settings_can_ask_for_scikit_learn(fitted):
    pipeline, rules = fitted["logistic_regression"]
    assert runtime_for(pipeline, rules, "sklearn") == (None, "scikit-learn (by settings)")


def test_a_missing_text_value_is_scored_as_in_training(fitted):
    """null from a client must reach the imputer as NaN (what training saw), not as an unknown category."""
    pipeline, rules = fitted["logistic_regression"]
    row = served_rows(rules)[1]
    row["home_ownership"] = None
    as_trained = pd.DataFrame([row], columns=[r.name for r in rules]).astype({"home_ownership": object})
    as_trained.loc[0, "home_ownership"] = np.nan
    np.testing.assert_allclose(pipeline.predict_proba(frame_of([row], rules)), pipeline.predict_proba(as_trained))
    unknown = pipeline.predict_proba(frame_of([{**row, "home_ownership": "never-seen"}], rules))
    assert not np.allclose(pipeline.predict_proba(frame_of([row], rules)), unknown)


def test_numbers_beyond_float32_are_scored_by_scikit_learn(fitted):
    """The graph takes float32: a finite float64 beyond its range would overflow to infinity there."""
    pipeline, rules = fitted["logistic_regression"]
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    model = ServedModel("m", 1, "1.0.0", pipeline, rules, [0, 1], datetime.now(UTC), onnx=onnx, runtime=runtime)
    rows = served_rows(rules)[:3]
    rows[1]["annual_income"] = 1e39
    with pytest.raises(onnx_model.BeyondFloat32):
        onnx.predict_proba(rows)
    served = model.predict_proba(rows)
    assert np.isfinite(served).all()
    np.testing.assert_allclose(served, pipeline.predict_proba(frame_of(rows, rules)))
