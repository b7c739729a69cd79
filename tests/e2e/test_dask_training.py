"""Candidate training fanned out by prefect-dask's task runner on a local cluster, selected by settings only."""

from __future__ import annotations

import pytest
from prefect_dask import DaskTaskRunner

from flows.training import candidate_task_runner, training_flow
from mlops_core.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_candidates_train_on_a_local_dask_cluster(settings, loan_batches, monkeypatch):
    monkeypatch.setenv("MLOPS_TRAINING__TASK_RUNNER", "dask")
    get_settings.cache_clear()
    runner = candidate_task_runner(get_settings())
    assert isinstance(runner, DaskTaskRunner)
    assert runner.cluster_kwargs["processes"] is False  # no temporary Prefect server per worker process

    outcome = training_flow.with_options(task_runner=runner)()

    assert outcome.registered.version == 1
    assert outcome.promotion.moved
    assert (settings.state_dir / "dask").is_dir()  # the local cluster ran with the project's scratch directory
