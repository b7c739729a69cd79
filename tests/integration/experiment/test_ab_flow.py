"""The A/B evaluation flow over a real prediction log, MLflow store and audit database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops_core import registry
from mlops_core.prediction_log import engine_for, predictions, record_ground_truth
from stages.promotion.audit import AuditLog
from tests.unit.experiment.test_experiment import START, ab_log


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_promotes_a_better_challenger_and_records_it(settings, loan_batches, monkeypatch):
    from flows.ab_evaluation import ab_evaluation_flow
    from mlops_core.settings import get_settings
    from tests.helpers import register_quickly

    name = settings.mlflow.registered_model
    first = register_quickly(settings, loan_batches, seed=0).version
    second = register_quickly(settings, loan_batches, candidate="hist_gradient_boosting", seed=1).version
    client = registry.connect(settings)
    client.set_registered_model_alias(name, registry.CHAMPION, str(first))
    client.set_registered_model_alias(name, registry.CHALLENGER, str(second))
    frame = ab_log(8, 800, champion_noise=1.5, challenger_noise=0.2)
    frame["model_version"] = frame["model_version"].map({1: first, 2: second})
    engine = engine_for(settings.prediction_log_url)
    with engine.begin() as connection:
        connection.execute(predictions.insert(), frame.to_dict(orient="records"))

    # Served half and half while the mode says 10 %: the split is broken, so is the experiment.
    registry.set_serving_mode(client, name, "ab", 0.1, actor="tests", reason="experiment")
    blocked = ab_evaluation_flow(auto=True)
    assert blocked.decision == "collect" and not blocked.applied
    assert "sample ratio mismatch" in blocked.evidence and "50.0% vs 10.0% configured" in blocked.evidence

    registry.set_serving_mode(client, name, "ab", 0.5, actor="tests", reason="experiment")
    recommended = ab_evaluation_flow(auto=False)
    assert recommended.decision == "promote" and not recommended.applied
    (ab,) = recommended.evaluations  # the business value per decision, with its interval, beside the ML metrics
    assert ab.challenger.business_value.value > ab.champion.business_value.value
    assert ab.challenger.business_value.lower < ab.challenger.business_value.value < ab.challenger.business_value.upper

    # The A/B shows the challenger better; its calibration on the holdout regresses past a strict guard.
    monkeypatch.setenv("MLOPS_PROMOTION__GUARD_TOLERANCES", '{"ece": 0.005}')
    get_settings.cache_clear()
    refused = ab_evaluation_flow(auto=True)
    assert refused.decision == "promote" and not refused.applied
    assert "the promotion gate refused" in refused.evidence and "guard ece regresses" in refused.evidence
    assert int(client.get_model_version_by_alias(name, registry.CHAMPION).version) == first

    monkeypatch.setenv("MLOPS_PROMOTION__GUARD_TOLERANCES", '{"ece": 0.05, "log_loss": 0.05, "accuracy": 0.05}')
    get_settings.cache_clear()
    applied = ab_evaluation_flow(auto=True)
    assert applied.applied and int(client.get_model_version_by_alias(name, registry.CHAMPION).version) == second
    moves = AuditLog(settings.audit_url).history(name)
    promoted, cleared = moves[-2:]
    assert promoted.alias == registry.CHAMPION and not promoted.forced and promoted.actor == "ab-evaluation"
    assert (
        "shown by the A/B evaluation" in promoted.reason
        and "mSPRT" in promoted.reason
        and cleared.alias == registry.CHALLENGER
        and cleared.to_version is None
    )
    assert client.get_registered_model(name).tags[registry.TAG_SERVING_MODE] == "champion"
    assert ab_evaluation_flow().decision == "collect"  # nothing left under test


@pytest.mark.usefixtures("prefect_harness")
def test_each_evaluation_reads_only_the_rows_logged_or_labelled_since_the_last(settings):
    from prefect import flow

    from tasks.experiment import read_new_evidence

    @flow
    def evaluation_reads():
        return read_new_evidence(settings, 1, 2)

    frame = ab_log(9, 400, 0.5, 0.5)
    frame["ts"] = [START + timedelta(minutes=10 * i) for i in range(len(frame))]  # a row every ten minutes
    unlabelled = frame["prediction_id"].iloc[:100]
    frame.loc[frame["prediction_id"].isin(unlabelled), "ground_truth"] = None
    engine = engine_for(settings.prediction_log_url)
    with engine.begin() as connection:
        connection.execute(predictions.insert(), frame.to_dict(orient="records"))

    first = evaluation_reads()
    assert first.read == len(first.rows) == 800
    again = evaluation_reads()
    assert again.read == 1 and len(again.rows) == 800  # only the newest row, within the late-write margin

    later = ab_log(10, 25, 0.5, 0.5)
    later["ts"] = frame["ts"].max() + timedelta(days=1)
    with engine.begin() as connection:
        connection.execute(predictions.insert(), later.to_dict(orient="records"))
    for prediction_id in unlabelled:  # the outcomes of older rows arrive
        assert record_ground_truth(engine, prediction_id, "1")
    engine.dispose()
    third = evaluation_reads()
    assert third.read == 1 + 50 + 100 and len(third.rows) == 850  # the newest old row again, new rows, new labels
    assert third.rows.set_index("prediction_id").loc[list(unlabelled), "ground_truth"].eq("1").all()
