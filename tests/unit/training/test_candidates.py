from datetime import date

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from stages.data.generator import write_batches
from stages.data.loading import load_window
from stages.training.candidates import (
    Candidate,
    TrainingDataError,
    fit_candidate,
    sample_for_fit,
    select_best,
    shared_preprocessing,
    split_holdout,
)
from stages.training.metrics import expected_calibration_error, holdout_metrics


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("train")
    write_batches(directory, rows=5_000, days=5, start=date(2026, 11, 1), seed=5)
    return load_window(directory, target="defaulted", entity_id="applicant_id", timestamp="application_ts")


def _split(loaded, timestamp="application_ts"):
    return split_holdout(
        loaded.frame,
        features=loaded.feature_columns,
        target="defaulted",
        holdout_fraction=0.2,
        timestamp=timestamp,
        seed=0,
    )


def test_temporal_split_holds_out_the_newest_rows(loaded):
    split = _split(loaded)
    ts = loaded.frame["application_ts"]
    assert ts.loc[split.x_train.index].max() <= ts.loc[split.x_holdout.index].min()
    assert len(split.x_holdout) == 1_000
    assert "application_ts" not in split.x_train.columns


def test_temporal_split_of_rows_out_of_time_order_is_the_split_of_the_ordered_rows(loaded):
    shuffled = loaded.frame.sample(frac=1.0, random_state=1)
    ordered, unordered = _split(loaded), _split(type(loaded)(**{**vars(loaded), "frame": shuffled}))
    ts = loaded.frame["application_ts"]
    assert sorted(ts.loc[unordered.x_holdout.index]) == sorted(ts.loc[ordered.x_holdout.index])
    assert ts.loc[unordered.x_train.index].max() <= ts.loc[unordered.x_holdout.index].min()


def test_without_timestamp_the_split_is_stratified(loaded):
    split = _split(loaded, timestamp=None)
    assert abs(split.y_train.mean() - split.y_holdout.mean()) < 0.01


def test_one_class_target_is_refused(loaded):
    frame = loaded.frame.assign(defaulted=0)
    with pytest.raises(TrainingDataError, match="exactly 2 classes"):
        split_holdout(
            frame, features=loaded.feature_columns, target="defaulted", holdout_fraction=0.2, timestamp=None, seed=0
        )


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
def test_each_candidate_learns_from_raw_columns_with_missing_values(loaded, name):
    split = _split(loaded)
    assert split.x_train.isna().any().any()
    candidate = fit_candidate(name, split, seed=0)
    metrics = holdout_metrics(candidate.pipeline, split.x_holdout, split.y_holdout)
    assert metrics["roc_auc"] > 0.65
    assert 0 <= metrics["ece"] < 0.1
    assert set(metrics) == {"roc_auc", "accuracy", "f1", "log_loss", "brier", "ece"}
    # Whichever candidate wins, MLflow must be able to store it with skops (safe loading, explicit trust).
    import skops.io

    from stages.training.tracking import TRUSTED_MODEL_TYPES

    assert set(skops.io.get_untrusted_types(data=skops.io.dumps(candidate.pipeline))) <= set(TRUSTED_MODEL_TYPES)


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
def test_a_fit_on_the_shared_preprocessing_predicts_exactly_as_its_own_pipeline(loaded, name):
    split = sample_for_fit(_split(loaded), 1_000, seed=0)  # two fits each: small ones, on one thread
    shared = shared_preprocessing(["logistic_regression", "random_forest", "hist_gradient_boosting"], split)
    with threadpool_limits(limits=1):
        alone, sharing = fit_candidate(name, split, seed=0), fit_candidate(name, split, seed=0, shared=shared)
    expected = alone.pipeline.predict_proba(split.x_holdout)
    np.testing.assert_array_equal(sharing.pipeline.predict_proba(split.x_holdout), expected)
    assert sharing.params == alone.params


def test_no_shared_preprocessing_when_every_candidate_scales_its_own(loaded):
    assert shared_preprocessing(["logistic_regression"], _split(loaded)) is None


def test_unknown_category_at_prediction_time_is_handled(loaded):
    split = _split(loaded)
    candidate = fit_candidate("logistic_regression", split, seed=0)
    rows = split.x_holdout.head(5).copy()
    rows["loan_purpose"] = "space_travel"
    assert candidate.pipeline.predict_proba(rows).shape == (5, 2)


def test_best_respects_metric_direction():
    def cand(name, **metrics):
        return Candidate(name=name, pipeline=None, params={}, fit_seconds=0.0, metrics=metrics)

    a, b = cand("a", roc_auc=0.8, log_loss=0.5), cand("b", roc_auc=0.7, log_loss=0.4)
    assert select_best([a, b], "roc_auc").name == "a"
    assert select_best([a, b], "log_loss").name == "b"


def test_calibration_error_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.where(p > 0.5, 0.99, 0.01)) > 0.2


@pytest.mark.parametrize(
    ("max_rows", "expected_rows", "sampled"),
    [(None, 4_000, False), (10_000, 4_000, False), (4_000, 4_000, False), (1_500, 1_500, True)],
)
def test_fits_subsample_only_the_training_rows_and_say_so(loaded, max_rows, expected_rows, sampled):
    split = _split(loaded)
    fitted = sample_for_fit(split, max_rows, seed=0)
    assert len(fitted.x_train) == len(fitted.y_train) == expected_rows
    assert fitted.x_holdout is split.x_holdout  # the holdout stays whole
    assert fitted.x_train.index.is_monotonic_increasing and fitted.x_train.index.equals(fitted.y_train.index)
    assert fitted.x_train.index.isin(split.x_train.index).all()
    assert ("fit on a random 1,500 of 4,000 training rows" in fitted.strategy) is sampled
    assert sample_for_fit(split, max_rows, seed=0).x_train.index.equals(fitted.x_train.index)  # reproducible
