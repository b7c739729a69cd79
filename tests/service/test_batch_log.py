"""A batch logged as one journal record reads back, once expanded, exactly as the same answers logged row by row;
no server (the HTTP side is in test_service_http.py and test_service_durability.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from mlops_core.prediction_log import GroupWriter, engine_for, prediction_batches, predictions, read_predictions
from services.inputs import Problem
from services.service import batch_log, log_records
from stages.monitoring.window import count_window

ROWS = 400


@pytest.mark.parametrize("variant", ["champion", "shadow"])
def test_a_batch_record_expands_into_the_rows_row_by_row_logging_writes(tmp_path, variant):
    rng = np.random.default_rng(3)
    columns = {
        "age": rng.normal(40, 9, ROWS),
        "income": np.where(rng.random(ROWS) < 0.2, np.nan, rng.lognormal(10, 1, ROWS)),
        "region": np.array(["north", "south", None, "west"] * (ROWS // 4), dtype=object),
        "owns_home": np.array([True, False, None, True] * (ROWS // 4), dtype=object),
    }
    scores = rng.random((ROWS, 1))
    probabilities = np.hstack([scores, 1 - scores])
    flags = [[Problem(f"rows[{i}].age", "far outside the training range")] if i % 50 == 0 else [] for i in range(ROWS)]
    model = SimpleNamespace(name="loan-default", version=4, semver="1.1.0", classes=[0, 1])
    paired = [f"00000000-0000-4000-8000-{i:012x}" for i in range(ROWS)] if variant == "shadow" else None
    common = {"ts": datetime.now(UTC), "latency_ms": 12.5, "key_id": "k1"}
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine = engine_for(url)
    by_row, row_answers = log_records(model, variant, columns, probabilities, flags, paired, **common)
    journal, batch_answers = batch_log(model, variant, columns, probabilities, flags, paired, **common)
    for table, records in ((predictions, by_row), (prediction_batches, journal)):
        writer = GroupWriter(engine, table)
        writer.submit(records).result()
        writer.close()

    logged = read_predictions(url).set_index("prediction_id")

    assert len(logged) == 2 * ROWS and len(set(batch_answers.ids)) == ROWS
    from_batch = logged.loc[batch_answers.ids].reset_index(drop=True)
    from_rows = logged.loc[row_answers.ids].reset_index(drop=True)
    assert from_batch.to_dict("records") == from_rows.to_dict("records")
    assert batch_answers.as_dicts()[0] | {"prediction_id": None} == row_answers.as_dicts()[0] | {"prediction_id": None}
    window = count_window(engine, model.name, common["ts"] - timedelta(minutes=1), datetime.now(UTC))
    assert window == (0 if variant == "shadow" else 2 * ROWS)
    engine.dispose()
