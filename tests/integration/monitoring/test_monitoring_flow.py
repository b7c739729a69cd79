"""The monitoring flow over a real prediction log, MLflow store and Prefect API (test harness)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter

from flows.monitoring import monitoring_flow
from flows.training import training_flow
from mlops_core import db, migrations, registry, security_log
from mlops_core.prediction_log import engine_for, record_ground_truth
from stages.data.generator import TARGET, generate_day
from stages.monitoring.history import CheckHistory
from stages.monitoring.trend import TREND_FIGURE, TREND_RUN_TAG, check_step
from stages.monitoring.window import MonitoringError
from stages.promotion.aliases import promote
from tests.helpers import log_predictions, register_quickly, retraining_triggers
from tooling.processes import poll

pytestmark = pytest.mark.usefixtures("prefect_harness")
MODEL = "loan-default"


@pytest.fixture
def champion(settings, loan_batches, monkeypatch):
    monkeypatch.setenv("MLOPS_MONITORING__MIN_ROWS", "300")
    monkeypatch.setenv("MLOPS_MONITORING__MIN_LABELLED_ROWS", "300")
    from mlops_core.settings import get_settings

    get_settings.cache_clear()
    version = register_quickly(get_settings(), loan_batches, candidate="hist_gradient_boosting")
    promote(get_settings(), version.version)
    return version


@pytest.fixture
def retrain_deployment(prefect_harness, settings):
    """The retraining deployment with its trigger as prefect.yaml declares it, registered in the test server (no
    worker: runs stay scheduled). The runs the test's checks asked for are awaited and deleted afterwards, so
    none arrives during the next test."""
    deployment_id = training_flow.to_deployment(name="retrain", triggers=retraining_triggers()).apply()
    yield deployment_id
    asked = sum(check.triggered for check in CheckHistory(settings.monitoring_state_url).all(MODEL))
    with get_client(sync_client=True) as client:
        for run in _triggered_retrainings(asked) if asked else _retraining_runs():
            client.delete_flow_run(run.id)


TRIGGER_TIMEOUT = 60  # the server's trigger service acts on an event within seconds


def _retraining_runs():
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"])),
            flow_run_filter=FlowRunFilter(),
        )


def _triggered_retrainings(count: int = 1):
    """The retraining runs once the trigger has started ``count`` of them."""
    return poll(
        lambda: len(runs := _retraining_runs()) >= count and runs,
        timeout=TRIGGER_TIMEOUT,
        what=f"{count} retraining run(s) started by the trigger",
    )


def test_no_drift_triggers_nothing(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 2_000, seed=7), with_truth=True)
    record = monitoring_flow()
    assert record.status == "ok", record.reason  # no alert of any kind: drift, scores, quality, health, security
    assert record.drift_share < 0.3 and not record.triggered
    assert _retraining_runs() == []


def test_covariate_drift_triggers_exactly_one_retraining_within_the_cooldown(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 2_000, seed=7, scenario="covariate"))
    first = monitoring_flow()
    assert first.status == "alert" and first.triggered, first.reason
    assert "drift share" in first.reason

    log_predictions(
        settings, generate_day(date(2026, 11, 10), 2_000, seed=7, scenario="covariate"), when=datetime.now(UTC)
    )
    (run,) = _triggered_retrainings()
    second = monitoring_flow()
    assert second.status == "alert" and not second.triggered
    assert "already triggered" in second.reason

    assert run.parameters["registered_model"] == MODEL and run.parameters["suite"] == settings.validation.suite
    assert run.parameters["data"]["source"] == str(settings.data_source)
    assert run.created_by.display_value == "retrain on drift or decay"  # the automation prefect.yaml declares
    assert run.parameters["reason"] == f"drift (share {first.drift_share:.2f})"  # the run is named after it
    time.sleep(5)  # the second check's event (retrain "false") must start nothing
    assert len(_retraining_runs()) == 1

    history = CheckHistory(settings.monitoring_state_url).all(MODEL)
    assert [(c.status, c.triggered) for c in history] == [("alert", True), ("alert", False)]
    assert second.window_start == first.window_end  # each check starts where the last one ended


def test_concept_drift_with_labels_triggers_on_the_quality_drop(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 3_000, seed=7, scenario="concept"), with_truth=True)
    record = monitoring_flow()
    assert record.drift_share < 0.3  # the inputs did not move ...
    assert record.status == "alert" and record.triggered  # ... but the model got worse
    assert "ROC AUC" in record.reason and record.quality_drop > 0.05
    assert len(_triggered_retrainings()) == 1


def test_an_empty_window_skips_with_its_reason(settings, champion):
    record = monitoring_flow()
    assert record.status == "skipped"
    assert "0 usable rows" in record.reason and "minimum 300" in record.reason


def test_malformed_rows_are_counted_and_skipped(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 1_000, seed=7), malformed=150)
    record = monitoring_flow()
    assert record.status == "ok"
    client = registry.connect(settings)
    experiment = client.get_experiment_by_name("monitoring")
    run = client.search_runs([experiment.experiment_id], filter_string="tags.model = 'loan-default'")[0]
    assert run.data.metrics["malformed_rows"] == 150
    assert run.data.metrics["rows_checked"] == 850


def test_too_many_malformed_rows_skip_instead_of_reporting_no_drift(settings, champion):
    log_predictions(settings, generate_day(date(2026, 11, 9), 400, seed=7), malformed=300)
    record = monitoring_flow()
    assert record.status == "skipped" and "300 malformed rows skipped" in record.reason


def test_each_check_adds_to_the_models_drift_series_and_keeps_its_report(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 1_000, seed=7))
    first = monitoring_flow()
    log_predictions(settings, generate_day(date(2026, 11, 10), 1_000, seed=8), when=datetime.now(UTC))
    second = monitoring_flow()
    client = registry.connect(settings)
    experiment = client.get_experiment_by_name("monitoring")
    (trend,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TREND_RUN_TAG}` = '{MODEL}'")
    for name in ("drift_share", "score_psi", "psi.credit_score"):
        history = client.get_metric_history(trend.info.run_id, name)
        assert [m.step for m in history] == [check_step(first.checked_at), check_step(second.checked_at)], name
    assert [m.value for m in client.get_metric_history(trend.info.run_id, "drift_share")] == [
        first.drift_share,
        second.drift_share,
    ]
    check = client.search_runs([experiment.experiment_id], filter_string="tags.model = 'loan-default'")[0]
    assert "drift_share" in check.data.metrics
    artifacts = {a.path for a in client.list_artifacts(check.info.run_id)}
    assert TREND_FIGURE in artifacts and "evidently" in artifacts
    html = Path(
        mlflow.artifacts.download_artifacts(run_id=check.info.run_id, artifact_path="evidently/drift_report.html")
    )
    text = html.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:500].lower()
    assert len(text) > 10_000


def test_no_champion_fails_with_the_reason(settings, loan_batches):
    with pytest.raises(MonitoringError, match="no champion"):
        monitoring_flow()


def _retrained_or_alerted(record, kind: str) -> None:
    assert record.status == "alert" and f"{kind}:" in record.reason, record.reason


def test_late_labels_are_scored_at_the_next_check_and_alert_on_the_quality_drop(settings, champion, retrain_deployment):
    day = generate_day(date(2026, 11, 9), 1_000, seed=7, scenario="concept")
    ids = log_predictions(settings, day)  # the outcomes are not known yet
    first = monitoring_flow()
    assert first.status == "ok" and first.quality_drop is None, first.reason

    engine = engine_for(settings.prediction_log_url)  # weeks later, as the service's /feedback records them
    for prediction_id, truth in zip(ids, day[TARGET], strict=True):
        assert record_ground_truth(engine, prediction_id, str(int(truth)))
    engine.dispose()
    second = monitoring_flow()  # no new predictions: drift is not judged, the labels are
    _retrained_or_alerted(second, "quality drop")
    assert second.triggered and second.quality_drop > 0.05 and second.drift_share is None
    assert f"of v{champion.version} is" in second.reason and "drift not judged: 0 usable rows" in second.reason


def test_labels_of_another_version_do_not_count_against_the_champion(settings, champion, retrain_deployment):
    old = generate_day(date(2026, 11, 9), 1_000, seed=7, scenario="concept")
    log_predictions(settings, old, with_truth=True, version=int(champion.version) + 100)
    log_predictions(settings, generate_day(date(2026, 11, 9), 1_000, seed=8))
    record = monitoring_flow()
    assert record.status == "ok" and record.quality_drop is None, record.reason
    client = registry.connect(settings)
    run = client.search_runs(
        [client.get_experiment_by_name("monitoring").experiment_id], filter_string="tags.model = 'loan-default'"
    )[0]
    assert f"quality.v{int(champion.version) + 100}.champion.roc_auc" in run.data.metrics  # reported, apart


def test_drifted_scores_alert_as_prediction_drift(settings, champion, retrain_deployment):
    rows = generate_day(date(2026, 11, 9), 1_000, seed=7)  # the inputs do not move, the answers do
    log_predictions(settings, rows, scores=np.random.default_rng(1).uniform(0.6, 1.0, len(rows)))
    record = monitoring_flow()
    _retrained_or_alerted(record, "prediction drift")
    assert record.triggered and "drift share" not in record.reason


def test_slow_answers_alert_without_retraining(settings, champion, retrain_deployment):
    log_predictions(settings, generate_day(date(2026, 11, 9), 1_000, seed=7), latency_ms=900.0)
    record = monitoring_flow()
    _retrained_or_alerted(record, "latency")
    assert "p99 900 ms > 500 ms" in record.reason and not record.triggered
    assert _retraining_runs() == []
    # The same window again with the threshold a deployment parameter overrides: no alert.
    relaxed = monitoring_flow(window_hours=1, latency_p99_ms_threshold=1000)
    assert relaxed.status == "ok", relaxed.reason


def test_a_burst_of_refused_keys_alerts_as_security_without_retraining(settings, champion, retrain_deployment):
    engine = db.engine_for(settings.security_log_url, migrations.SECURITY_LOG)
    probe = {"ts": datetime.now(UTC) - timedelta(minutes=5), "event_type": security_log.INVALID_KEY, "path": "/predict"}
    with engine.begin() as connection:
        connection.execute(security_log.security_events.insert(), [probe] * 200)
    engine.dispose()
    record = monitoring_flow()
    _retrained_or_alerted(record, "security")
    assert "refused keys 200 in one hour" in record.reason and not record.triggered
    assert "drift not judged: 0 usable rows" in record.reason  # probing with no traffic is still seen
    assert _retraining_runs() == []
