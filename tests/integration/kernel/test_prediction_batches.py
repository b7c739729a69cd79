"""The prediction log's batch journal on SQLite and PostgreSQL: a committed batch record becomes ``predictions``
rows whoever expands it (a restarted service, a reader, a late label), and expanders running at once in several
processes or instances write every row exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from mlops_core import prediction_log
from mlops_core.prediction_log import (
    GroupWriter,
    batch_prediction_ids,
    batch_record,
    engine_for,
    expand_batches,
    new_batch_id,
    prediction_batches,
    predictions,
    read_predictions,
    record_ground_truth,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def log_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    server, name = request.getfixturevalue("postgres_server"), f"log_{time.monotonic_ns()}"
    engine = create_engine(f"postgresql+psycopg://{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"postgresql+psycopg://{server}/{name}"


def commit_batches(url: str, sizes: list[int]) -> list[str]:
    """Batch records committed as the service commits them, none expanded (the service stopped at once); returns
    the prediction ids its answers carried."""
    engine = create_engine(url)
    writer = GroupWriter(engine, prediction_batches)
    rng, ids = np.random.default_rng(7), []
    try:
        for rows in sizes:
            probabilities = rng.random((rows, 1))
            batch_id = new_batch_id()
            record = batch_record(
                batch_id,
                {"age": rng.normal(40, 9, rows), "region": np.array(["north", None] * (rows // 2), dtype=object)},
                np.hstack([probabilities, 1 - probabilities]),
                [0, 1],
                [None] * rows,
                ts=datetime.now(UTC),
                model_name="loan-default",
                model_version=1,
                model_semver="1.0.0",
                variant="champion",
                latency_ms=3.0,
                key_id="k1",
            )
            writer.submit([record]).result()
            ids += batch_prediction_ids(batch_id, rows)
    finally:
        writer.close()
        engine.dispose()
    return ids


def counts(url: str) -> tuple[int, int]:
    """(rows in ``predictions``, records left in the journal)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(predictions)).scalar()
            return rows, connection.execute(select(func.count()).select_from(prediction_batches)).scalar()
    finally:
        engine.dispose()


def test_batches_committed_before_a_stop_are_rows_for_the_next_reader(log_url: str) -> None:
    engine_for(log_url).dispose()
    acknowledged = commit_batches(log_url, [300, 50])
    assert counts(log_url) == (0, 2)

    logged = read_predictions(log_url).set_index("prediction_id")

    assert sorted(logged.index) == sorted(acknowledged)
    assert counts(log_url) == (350, 0)
    first = logged.loc[acknowledged[0]]
    assert first.model_version == 1 and first.key_id == "k1" and first["flags"] is None and len(first.input_hash) == 64
    assert set(first.features) == {"age", "region"} and first.probabilities["0"] + first.probabilities["1"] == 1


def test_a_label_for_a_row_of_a_batch_not_expanded_yet_is_recorded(log_url: str) -> None:
    engine = engine_for(log_url)
    try:
        acknowledged = commit_batches(log_url, [120])
        assert record_ground_truth(engine, acknowledged[-1], "1")
        assert counts(log_url) == (120, 0)
        assert not record_ground_truth(engine, acknowledged[-1][:-1] + "f", "1")  # a row the batch did not have
    finally:
        engine.dispose()
    labelled = read_predictions(log_url).set_index("prediction_id").loc[acknowledged[-1]]
    assert labelled.ground_truth == "1" and labelled.ground_truth_ts is not None


def test_expanders_running_at_once_write_every_row_once(log_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first expander stops inside its first chunk's transaction until the second one is waiting to claim the
    same chunk: the second must find the chunk taken and go on with the rest (a second insert of a row would raise
    on the primary key)."""
    monkeypatch.setattr(prediction_log, "EXPANSION_CHUNK_ROWS", 250)
    engine_for(log_url).dispose()
    acknowledged = commit_batches(log_url, [1000, 500])
    inside, release = threading.Event(), threading.Event()
    build_rows = prediction_log._batch_rows

    def first_chunk_held(*args):
        if not inside.is_set():
            inside.set()
            release.wait(30)
        return build_rows(*args)

    monkeypatch.setattr(prediction_log, "_batch_rows", first_chunk_held)
    engines = [create_engine(log_url, connect_args={"timeout": 30} if "sqlite" in log_url else {}) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            holder = pool.submit(expand_batches, engines[0])
            assert inside.wait(30)
            waiter = pool.submit(expand_batches, engines[1])
            time.sleep(1)  # the second expander is now blocked on the first one's claim
            release.set()
            written = [holder.result(), waiter.result()]
    finally:
        for engine in engines:
            engine.dispose()
    assert sum(written) == len(acknowledged), written
    assert counts(log_url) == (len(acknowledged), 0)
