"""The Great Expectations gate against the committed suite (in a private copy of the context)."""

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from great_expectations.exceptions import DataContextError

from stages.data.generator import generate_day
from stages.data.loading import load_window
from stages.data.validation import create_suite, validate

SUITE = "loan_default"


@pytest.fixture(scope="module")
def good_frame(tmp_path_factory) -> pd.DataFrame:
    from stages.data.generator import write_batches

    directory = tmp_path_factory.mktemp("good")
    write_batches(directory, rows=3_000, days=3, start=date(2026, 11, 10), seed=11)
    return load_window(directory, target="defaulted", entity_id="applicant_id", timestamp="application_ts").frame


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "uncommitted" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_fresh_data_passes_and_leaves_the_committed_context_unchanged(good_frame, gx_context):
    before = _tree_digest(gx_context)
    outcome = validate(good_frame, gx_context, SUITE)
    assert outcome.success, outcome.summary()
    assert outcome.evaluated > 40
    assert outcome.data_docs and Path(outcome.data_docs[0].removeprefix("file://")).exists()
    assert _tree_digest(gx_context) == before


def test_the_gate_keeps_no_reference_to_the_window(good_frame, gx_context):
    import gc
    import weakref

    frame = good_frame.copy()
    validated = weakref.ref(frame)
    assert validate(frame, gx_context, SUITE).success
    del frame
    gc.collect()
    assert validated() is None  # GX's engine would keep the batch for the context's (the process's) life


@pytest.mark.parametrize("scenario", ["covariate", "concept"])
def test_drifted_but_valid_data_passes(gx_context, scenario):
    frame = generate_day(date(2026, 11, 20), 2_000, scenario=scenario)
    frame[frame.select_dtypes("category").columns] = frame.select_dtypes("category").astype(object)
    assert validate(frame, gx_context, SUITE).success


def _broken(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = frame.copy()
    if how == "missing-column":
        return frame.drop(columns=["credit_score"])
    if how == "wrong-type":
        frame["loan_amount"] = frame["loan_amount"].astype(str)
        frame.loc[0, "loan_amount"] = "twelve thousand"
    elif how == "out-of-range":
        frame.loc[:5, "age"] = -4
    elif how == "all-null":
        frame["annual_income"] = np.nan
    elif how == "too-many-nulls":
        frame.loc[frame.index[: len(frame) // 3], "credit_score"] = np.nan
    elif how == "unknown-category":
        frame.loc[:20, "home_ownership"] = "CASTLE"
    elif how == "bad-label":
        frame.loc[:3, "defaulted"] = 2
    elif how == "too-few-rows":
        return frame.head(20)
    return frame


@pytest.mark.parametrize(
    ("how", "expectation", "column"),
    [
        ("missing-column", "expect_table_columns_to_match_set", None),
        ("wrong-type", "expect_column_values_to_be_in_type_list", "loan_amount"),
        ("out-of-range", "expect_column_values_to_be_between", "age"),
        ("all-null", "expect_column_values_to_not_be_null", "annual_income"),
        ("too-many-nulls", "expect_column_values_to_not_be_null", "credit_score"),
        ("unknown-category", "expect_column_values_to_be_in_set", "home_ownership"),
        ("bad-label", "expect_column_values_to_be_in_set", "defaulted"),
        ("too-few-rows", "expect_table_row_count_to_be_between", None),
    ],
)
def test_broken_data_fails_naming_the_expectation(good_frame, gx_context, how, expectation, column):
    outcome = validate(_broken(good_frame, how), gx_context, SUITE)
    assert not outcome.success
    assert (expectation, column) in {(f.type, f.column) for f in outcome.failed}, outcome.summary()
    assert expectation in outcome.summary()


def test_suite_is_created_once_and_never_overwritten(gx_context, good_frame):
    path = create_suite(gx_context, "another", good_frame, target="defaulted")
    assert path.exists()
    assert validate(good_frame, gx_context, "another").success
    with pytest.raises(DataContextError, match="already exists"):
        create_suite(gx_context, "another", good_frame, target="defaulted")


def test_unknown_suite_points_to_the_command_that_creates_it(good_frame, gx_context):
    with pytest.raises(DataContextError, match="mlops gx init-suite"):
        validate(good_frame, gx_context, "nope")
