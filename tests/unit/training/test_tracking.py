from datetime import date

import mlflow.data
import numpy as np
import pytest

from stages.data.generator import write_batches
from stages.data.loading import load_window
from stages.training.tracking import dataset_schema


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tracking")
    write_batches(directory, rows=3_000, days=3, start=date(2026, 11, 1), seed=2)
    return load_window(directory, target="defaulted", entity_id="applicant_id", timestamp="application_ts").frame


def _late_gaps(frame):
    """Missing values only after the first thousand rows, in a text and a numeric column."""
    frame = frame.dropna().reset_index(drop=True).copy()
    frame.loc[2_000:, "region"] = None
    frame.loc[2_000:, "annual_income"] = np.nan
    return frame


def _text_empty_at_first(frame):
    frame = frame.copy()
    frame.loc[: len(frame) // 2, "region"] = None
    return frame


@pytest.mark.parametrize(
    ("shape", "fast"),
    [(lambda f: f, True), (_late_gaps, True), (lambda f: f.dropna(), True), (_text_empty_at_first, False)],
    ids=["as generated", "gaps after the probed rows", "no gaps", "a column empty in the probed rows"],
)
def test_the_dataset_schema_is_the_one_mlflow_infers(rows, shape, fast):
    frame = shape(rows)
    ours = dataset_schema(frame)
    assert (ours is not None) == fast
    if fast:
        assert ours == mlflow.data.from_pandas(frame).schema
