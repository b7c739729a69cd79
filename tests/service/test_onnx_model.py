"""Every candidate type is served compiled (the linear form or ONNX Runtime), only with scikit-learn's answers;
otherwise scikit-learn."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import threading
from datetime import UTC, date, datetime
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OrdinalEncoder, StandardScaler

from mlops_core.profile import profile_frame
from mlops_core.settings import CandidateName
from services import compiled, estimator_onnx, hgb_onnx, linear_model, onnx_model, service
from services.inputs import FieldRule, build_rules, check_row, chunks_of, columns_of, frame_of
from services.models import ServedModel, runtime_for
from services.probes import probe_rows
from services.runtime import usable_cores
from stages.data.generator import generate_day
from stages.training.candidates import fit_candidate, shared_preprocessing, split_holdout
from stages.training.tracking import model_signature

FEATURES_DROPPED = ("defaulted", "applicant_id", "application_ts")
CANDIDATES = get_args(CandidateName)
# The compiled form each built-in candidate type is served by.
COMPILED_BY = {
    "logistic_regression": linear_model.RUNTIME,
    "random_forest": estimator_onnx.RUNTIME,
    "hist_gradient_boosting": estimator_onnx.RUNTIME,
}


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
    """Each candidate's pipeline, fitted on the shared preprocessing as the flow fits them, and the service's field
    rules for it."""
    split, profile = split_and_profile
    shared = shared_preprocessing(list(CANDIDATES), split)
    models = {}
    for name in CANDIDATES:
        candidate = fit_candidate(name, split, seed=0, shared=shared)
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


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_candidate_is_served_compiled_with_scikit_learn_probabilities(fitted, name):
    """A built-in candidate type that falls back to scikit-learn fails here, whatever the reason."""
    pipeline, rules = fitted[name]
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == COMPILED_BY[name], runtime
    rows = served_rows(rules)
    assert any(row["home_ownership"] is None for row in rows) and any(np.isnan(row["annual_income"]) for row in rows)
    served = form.predict_proba(rows)
    reference = pipeline.predict_proba(frame_of(rows, rules))
    assert served.dtype == np.float64 and served.shape == reference.shape == (len(rows), 2)
    np.testing.assert_allclose(served, reference, rtol=0, atol=compiled.TOLERANCE)
    assert (served.argmax(axis=1) == reference.argmax(axis=1)).all()
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_every_candidate_type_has_its_compiled_form_named():
    assert set(COMPILED_BY) == set(CANDIDATES)


def test_the_guard_holds_compiled_models_to_a_millionth():
    assert compiled.TOLERANCE == 1e-6


@pytest.mark.parametrize("name", CANDIDATES)
def test_probe_rows_cover_the_places_a_compiled_model_can_differ(fitted, name):
    pipeline, rules = fitted[name]
    rows = probe_rows(pipeline, rules)
    for rule in rules:
        values = [row[rule.name] for row in rows]
        if rule.kind == "string":
            assert None in values and "never-seen-in-training" in values
        else:
            numbers = np.array(values, dtype=float)
            assert np.isnan(numbers).any()
            assert (
                {rule.low, rule.high} <= set(numbers)
                and np.nanmax(numbers) > rule.high
                and np.nanmin(numbers) < rule.low
            )
    if name != "logistic_regression":  # tree ensembles: rows at split thresholds of the numeric columns
        thresholds = split_thresholds(pipeline[-1])
        at = [row for row in rows if any(row[r.name] in thresholds for r in rules if r.kind != "string")]
        assert len(at) >= 100


def split_thresholds(model) -> set[float]:
    if hasattr(model, "_predictors"):
        return {float(n["num_threshold"]) for it in model._predictors for p in it for n in p.nodes if not n["is_leaf"]}
    return {float(t) for e in model.estimators_ for t in e.tree_.threshold[e.tree_.children_left >= 0]}


def _rerouted(change):
    """The HistGradientBoosting converter's nodes, with ``change`` applied to them before the graph is built."""
    original = hgb_onnx._nodes

    def nodes(model):
        attrs = original(model)
        change(attrs)
        return attrs

    return nodes


def test_a_graph_that_sends_values_at_a_threshold_the_other_way_is_not_served(fitted, monkeypatch):
    """Random rows almost never land on a split's threshold; the probes at every sampled split do."""
    pipeline, rules = fitted["hist_gradient_boosting"]

    def strict(attrs):
        attrs["nodes_modes"] = ["BRANCH_LT" if m == "BRANCH_LEQ" else m for m in attrs["nodes_modes"]]

    monkeypatch.setattr(hgb_onnx, "_nodes", _rerouted(strict))
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert onnx is None and "differs from scikit-learn" in runtime


def test_thresholds_kept_in_float64_are_not_served(fitted, monkeypatch):
    """A float32 input equal to a float64 threshold (a value at the split, or an imputed median, which often is
    one) rounds above it half of the time: such a graph sends those rows right where scikit-learn goes left."""
    pipeline, rules = fitted["hist_gradient_boosting"]
    monkeypatch.setattr(hgb_onnx, "_float32_threshold", float)
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert onnx is None and "differs from scikit-learn" in runtime


@pytest.fixture(scope="module")
def trees_see_missing_values(split_and_profile, fitted):
    """HistGradientBoosting on raw numbers, NaN included: no imputer stands between a missing value and the trees."""
    split, _ = split_and_profile
    preprocess = fitted["hist_gradient_boosting"][0].named_steps["preprocess"]
    (_, _, numeric), (name, text, categorical) = preprocess.transformers[:2]
    pipeline = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", "passthrough", numeric), (name, text, categorical)])),
            ("model", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ]
    )
    assert split.x_train[numeric].isna().any().any()
    return pipeline.fit(split.x_train, split.y_train), fitted["hist_gradient_boosting"][1]


def test_missing_values_reaching_the_trees_take_scikit_learns_branch(trees_see_missing_values, monkeypatch):
    pipeline, rules = trees_see_missing_values
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == estimator_onnx.RUNTIME, runtime
    rows = served_rows(rules)
    np.testing.assert_allclose(
        onnx.predict_proba(rows), pipeline.predict_proba(frame_of(rows, rules)), rtol=0, atol=compiled.TOLERANCE
    )

    def flipped(attrs):
        modes = attrs["nodes_modes"]
        tracks = attrs["nodes_missing_value_tracks_true"]
        attrs["nodes_missing_value_tracks_true"] = [
            1 - t if m != "LEAF" else t for t, m in zip(tracks, modes, strict=True)
        ]

    monkeypatch.setattr(hgb_onnx, "_nodes", _rerouted(flipped))
    onnx, runtime = runtime_for(pipeline, rules, "onnx")
    assert onnx is None and "differs from scikit-learn" in runtime


def test_a_candidate_that_cannot_compile_is_served_by_scikit_learn_with_a_one_line_reason(trees_see_missing_values):
    """Categorical splits have no ONNX tree test: the conversion is refused, not served wrong."""
    pipeline, rules = trees_see_missing_values
    categorical = copy.deepcopy(pipeline)
    model = categorical.named_steps["model"]
    model._predictors[0][0].nodes["is_categorical"][0] = True
    onnx, runtime = runtime_for(categorical, rules, "onnx")
    assert onnx is None and runtime.startswith("scikit-learn (") and "categorical" in runtime
    assert "\n" not in runtime


def test_a_compiled_form_that_disagrees_is_not_served(fitted, monkeypatch):
    pipeline, rules = fitted["logistic_regression"]
    monkeypatch.setattr(compiled, "TOLERANCE", -1.0)  # no compiled form can be that close
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert form is None and "differs from scikit-learn" in runtime


def test_a_linear_form_with_a_wrong_term_is_not_served_and_onnx_runtime_serves(fitted, monkeypatch):
    pipeline, rules = fitted["logistic_regression"]
    convert = linear_model.convert

    def unseen_as_missing(pipeline, rules):
        form = convert(pipeline, rules)
        return dataclasses.replace(form, texts=[(name, table, 0.0) for name, table, _ in form.texts])

    monkeypatch.setattr(linear_model, "convert", unseen_as_missing)
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == estimator_onnx.RUNTIME and isinstance(form, estimator_onnx.EstimatorPipeline)


def test_a_single_row_is_scored_by_the_linear_forms_own_path_with_the_same_answers(fitted):
    pipeline, rules = fitted["logistic_regression"]
    form = linear_model.checked(pipeline, rules)
    rows = served_rows(rules)
    together = form.predict_proba(rows)
    alone = np.vstack([form.predict_proba([row]) for row in rows])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-12)
    np.testing.assert_allclose(alone, pipeline.predict_proba(frame_of(rows, rules)), rtol=0, atol=compiled.TOLERANCE)
    extreme = {**rows[0], form.numbers[int(np.abs(form.slopes).argmax())]: 1e308}
    with pytest.raises(compiled.Uncompiled):
        form.predict_proba([extreme])


def test_the_guard_scores_each_probe_row_alone_too(fitted, monkeypatch):
    """A form whose single-row path disagrees is not served, though the same rows scored together agree."""
    pipeline, rules = fitted["logistic_regression"]
    one_row = linear_model.LinearPipeline._predict_one
    monkeypatch.setattr(
        linear_model.LinearPipeline, "_predict_one", lambda form, columns: one_row(form, columns)[:, ::-1]
    )
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == estimator_onnx.RUNTIME and isinstance(form, estimator_onnx.EstimatorPipeline)


def test_only_per_column_preprocessing_and_a_binary_logistic_regression_take_the_linear_form(fitted):
    for name in ("random_forest", "hist_gradient_boosting"):
        with pytest.raises(compiled.NotConvertible, match="logistic regression"):
            linear_model.convert(*fitted[name])
    pipeline, rules = fitted["logistic_regression"]
    binned = copy.deepcopy(pipeline)
    numeric = binned.named_steps["preprocess"].transformers_[0][1]
    numeric.steps.append(("bins", KBinsDiscretizer(n_bins=3)))
    with pytest.raises(compiled.NotConvertible, match="one by one"):
        linear_model.convert(binned, rules)


def test_numbers_beyond_float64_terms_are_scored_by_scikit_learn(fitted):
    pipeline, rules = fitted["logistic_regression"]
    form, runtime = runtime_for(pipeline, rules, "onnx")
    model = ServedModel("m", 1, "1.0.0", pipeline, rules, [0, 1], datetime.now(UTC), compiled=form, runtime=runtime)
    rows = served_rows(rules)[:3]
    steepest = int(np.abs(form.slopes).argmax())  # a standardised column of small spread: its slope exceeds 1
    assert abs(form.slopes[steepest]) > 1
    rows[1][form.numbers[steepest]] = 1e308
    with pytest.raises(compiled.Uncompiled):
        form.predict_proba(rows)
    try:
        reference = pipeline.predict_proba(frame_of(rows, rules))
    except ValueError:  # scikit-learn refuses the overflow itself: the service answers 422 (champion_scores)
        with pytest.raises(ValueError):
            model.predict_proba(rows)
    else:
        np.testing.assert_allclose(model.predict_proba(rows), reference)


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
    onnx = onnx_model.checked(pipeline, rules)
    model = ServedModel("m", 1, "1.0.0", pipeline, rules, [0, 1], datetime.now(UTC), compiled=onnx, runtime="onnx")
    rows = served_rows(rules)[:3]
    rows[1]["annual_income"] = 1e39
    with pytest.raises(onnx_model.BeyondFloat32):
        onnx.predict_proba(rows)
    served = model.predict_proba(rows)
    assert np.isfinite(served).all()
    np.testing.assert_allclose(served, pipeline.predict_proba(frame_of(rows, rules)))


@pytest.mark.parametrize("name", ["random_forest", "hist_gradient_boosting"])
def test_a_single_row_makes_the_same_features_as_the_rows_together(fitted, name):
    pipeline, rules = fitted[name]
    form = estimator_onnx.checked(pipeline, rules)
    columns = [columns_of([row], rules) for row in served_rows(rules)]
    alone = np.vstack([form._features_one(one) for one in columns])
    together = form._features({rule.name: np.concatenate([one[rule.name] for one in columns]) for rule in rules})
    np.testing.assert_array_equal(alone, together)
    reference = pipeline[:-1].transform(frame_of(served_rows(rules), rules))
    np.testing.assert_allclose(together, reference, rtol=1e-12, atol=0)


def test_preprocessing_that_is_not_per_column_is_served_by_the_whole_pipelines_graph(fitted, split_and_profile):
    split, _ = split_and_profile
    pipeline, rules = copy.deepcopy(fitted["random_forest"])
    numeric = pipeline.named_steps["preprocess"].transformers[0][1]
    numeric.steps.append(("project", PCA(n_components=3)))
    pipeline.fit(split.x_train, split.y_train)
    with pytest.raises(compiled.NotConvertible, match="one by one"):
        estimator_onnx.convert(pipeline, rules)
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == onnx_model.RUNTIME and isinstance(form, onnx_model.OnnxPipeline)
    rows = served_rows(rules)
    np.testing.assert_allclose(
        form.predict_proba(rows), pipeline.predict_proba(frame_of(rows, rules)), rtol=0, atol=compiled.TOLERANCE
    )


def test_a_feature_table_with_a_wrong_entry_is_not_served(fitted, monkeypatch):
    """The tables are read off the preprocessor; wrong entries (a missing number scored as 0) are caught."""
    pipeline, rules = fitted["hist_gradient_boosting"]
    tables = estimator_onnx.tables

    def missing_as_zero(preprocess, rules):
        base, numbers, texts = tables(preprocess, rules)
        return base, [dataclasses.replace(n, missing=n.offset) for n in numbers], texts

    monkeypatch.setattr(estimator_onnx, "tables", missing_as_zero)
    with pytest.raises(compiled.NotConvertible, match="differs from scikit-learn"):
        estimator_onnx.checked(pipeline, rules)
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == onnx_model.RUNTIME and isinstance(form, onnx_model.OnnxPipeline)


def test_numbers_beyond_float32_features_are_scored_by_scikit_learn(fitted):
    pipeline, rules = fitted["hist_gradient_boosting"]  # on float64 numbers (a random forest takes float32 too)
    form = estimator_onnx.checked(pipeline, rules)
    model = ServedModel(
        "m", 1, "1.0.0", pipeline, rules, [0, 1], datetime.now(UTC), compiled=form, runtime=estimator_onnx.RUNTIME
    )
    rows = served_rows(rules)[:3]
    rows[1]["annual_income"] = 1e39
    for scored in (rows, rows[1:2]):
        with pytest.raises(onnx_model.BeyondFloat32):
            form.predict_proba(scored)
        np.testing.assert_allclose(model.predict_proba(scored), pipeline.predict_proba(frame_of(scored, rules)))


def test_scaled_numbers_and_ordinal_codes_are_made_in_numpy_too(split_and_profile, fitted):
    """Other per-column steps a tree pipeline may hold: a scaler on the numbers, ordinal codes (unseen ones -1)."""
    split, _ = split_and_profile
    rules = fitted["random_forest"][1]
    numeric = [r.name for r in rules if r.kind != "string"]
    text = [r.name for r in rules if r.kind == "string"]
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
                        (
                            "text",
                            Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("codes", codes)]),
                            text,
                        ),
                    ]
                ),
            ),
            ("model", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)),
        ]
    ).fit(split.x_train, split.y_train)
    form, runtime = runtime_for(pipeline, rules, "onnx")
    assert runtime == estimator_onnx.RUNTIME and isinstance(form, estimator_onnx.EstimatorPipeline), runtime
    rows = served_rows(rules)
    np.testing.assert_allclose(
        form.predict_proba(rows), pipeline.predict_proba(frame_of(rows, rules)), rtol=0, atol=compiled.TOLERANCE
    )


@pytest.mark.parametrize(
    ("rows", "threads", "chunks"),
    [
        (17, 4, 1),  # just above the inline size: one thread
        (3_999, 2, 1),  # a second chunk would hold fewer than CHUNK_ROWS rows
        (4_000, 2, 2),
        (10_000, 2, 2),
        (10_000, 8, 5),  # no chunk below CHUNK_ROWS, however many threads
        (1_000_000, 1, 1),
    ],
)
def test_a_batch_is_cut_into_one_chunk_per_thread_of_enough_rows(rows, threads, chunks):
    assert service.scoring_chunks(rows, threads) == chunks
    assert service.CHUNK_ROWS == 2_000


@pytest.mark.parametrize(
    ("affinity", "cgroup_cpus", "cores"),
    [
        (2, 2.0, 2),  # no quota: BentoML reads the machine's cores
        (64, 2.0, 2),  # a container limited to 2 CPUs on a large host
        (64, 1.5, 1),  # a fraction of a core is not a core to keep busy
        (64, 0.5, 1),  # at least one
        (4, 8.0, 4),  # pinned to fewer cores than the quota
    ],
)
def test_batch_threads_count_the_cores_a_worker_may_keep_busy(affinity, cgroup_cpus, cores):
    assert usable_cores(affinity, cgroup_cpus) == cores


def test_chunks_are_consecutive_rows_of_nearly_equal_size():
    columns = {"a": np.arange(10, dtype=np.float64), "b": np.array(list("abcdefghij"), dtype=object)}
    parts = chunks_of(columns, 3)
    assert [len(part["a"]) for part in parts] == [3, 3, 4]
    for name, column in columns.items():
        np.testing.assert_array_equal(np.concatenate([part[name] for part in parts]), column)


@pytest.mark.parametrize("name", CANDIDATES)
@pytest.mark.parametrize("model_runtime", ["onnx", "sklearn"])
def test_a_large_batch_is_scored_in_chunks_side_by_side_with_the_same_answers(fitted, name, model_runtime):
    pipeline, rules = fitted[name]
    form, served_by = runtime_for(pipeline, rules, model_runtime)
    model = ServedModel(name, 1, "1.0.0", pipeline, rules, [0, 1], datetime.now(UTC), form, served_by)
    columns = columns_of(served_rows(rules) * 20, rules)  # 8,000 rows
    together = model.predict_columns(columns)
    meeting = threading.Barrier(4, timeout=20)

    def side_by_side(model, part):
        meeting.wait()  # passes only once all four chunks are being scored at the same time
        return model.predict_columns(part)

    chunked = asyncio.run(service.scored_in_chunks(side_by_side, model, columns, 4))
    np.testing.assert_array_equal(chunked, together)
