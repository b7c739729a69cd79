"""The monitoring alert and trigger decision, case by case: drift, decay, prediction drift, health, security,
episodes and the cooldown."""

from datetime import UTC, datetime, timedelta

import pytest

from mlops_core.settings import MonitoringSettings
from stages.monitoring.decision import (
    MODEL_RESOURCE,
    NO_ALERT_REASON,
    RETRAIN_LABEL,
    RETRAINING_KINDS,
    alert_event_name,
    alert_events,
    check_alerts,
    decide_alert,
    episode_of,
)
from stages.monitoring.drift import DriftResult, PredictionDrift
from stages.monitoring.health import HealthFigures
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import QualityResult
from tests.helpers import retraining_triggers

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = MonitoringSettings(drift_share_threshold=0.3, quality_drop_threshold=0.05, cooldown_hours=12)


def drift(share: float) -> DriftResult:
    return DriftResult(share, {"income": 0.4} if share else {}, {"income": 0.4, "age": 0.01}, 0.0, snapshot=None)


def quality(drop: float) -> QualityResult:
    return QualityResult(labelled_rows=500, current={"roc_auc": 0.80 - drop}, holdout={"roc_auc": 0.80}, drop=drop)


def check(status: str, episode: int, hours_ago: float = 1) -> CheckRecord:
    at = NOW - timedelta(hours=hours_ago)
    return CheckRecord(
        checked_at=at,
        model="m",
        window_start=at,
        window_end=at,
        status=status,
        episode=episode,
        retraining_alert=status == "alert",
        reason="",
    )


@pytest.mark.parametrize(
    (
        "case",
        "share",
        "drop",
        "last",
        "episode_triggered",
        "last_trigger_hours_ago",
        "alert",
        "episode",
        "cause",
        "triggers",
        "says",
    ),
    [
        ("first check, quiet", 0.1, None, None, False, None, False, 0, None, False, NO_ALERT_REASON),
        ("first check, drift", 0.5, None, None, False, None, True, 1, "drift", True, "drift share 0.50 >= 0.3"),
        (
            "drift share at the threshold alerts",
            0.3,
            None,
            check("ok", 0),
            False,
            None,
            True,
            1,
            "drift",
            True,
            "drift share",
        ),
        (
            "quality drop alone",
            0.0,
            0.10,
            check("ok", 2),
            False,
            None,
            True,
            3,
            "quality drop",
            True,
            "0.100 below the holdout",
        ),
        (
            "quality drop within the allowance",
            0.0,
            0.05,
            check("ok", 2),
            False,
            None,
            False,
            2,
            None,
            False,
            NO_ALERT_REASON,
        ),
        (
            "drift and decay: drift is the cause",
            0.6,
            0.2,
            check("ok", 0),
            False,
            None,
            True,
            1,
            "drift",
            True,
            "ROC AUC",
        ),
        (
            "alert continues an episode that triggered",
            0.5,
            None,
            check("alert", 4),
            True,
            1,
            True,
            4,
            "drift",
            False,
            "already triggered in episode 4",
        ),
        (
            "alert continues an episode that did not trigger",
            0.5,
            None,
            check("alert", 4),
            False,
            13,
            True,
            4,
            "drift",
            True,
            "drift share",
        ),
        (
            "new episode within the cooldown",
            0.5,
            None,
            check("ok", 4),
            False,
            11,
            True,
            5,
            "drift",
            False,
            "within the cooldown",
        ),
        ("new episode after the cooldown", 0.5, None, check("ok", 4), False, 12, True, 5, "drift", True, "drift share"),
        (
            "quiet check after an episode keeps its number",
            0.0,
            None,
            check("alert", 4),
            True,
            1,
            False,
            4,
            None,
            False,
            NO_ALERT_REASON,
        ),
    ],
)
def test_alert_decision_cases(
    case, share, drop, last, episode_triggered, last_trigger_hours_ago, alert, episode, cause, triggers, says
):
    decision = decide_alert(
        drift(share),
        None if drop is None else quality(drop),
        POLICY,
        last_check=last,
        last_episode_triggered=episode_triggered,
        last_trigger_at=None if last_trigger_hours_ago is None else NOW - timedelta(hours=last_trigger_hours_ago),
        now=NOW,
    )
    assert (decision.alert, decision.episode, decision.cause, decision.triggers_retraining) == (
        alert,
        episode,
        cause,
        triggers,
    ), case
    assert says in f"{decision.reason}; {decision.held_back}", case
    assert decision.status == ("alert" if alert else "ok")


@pytest.mark.parametrize(
    ("last", "alert", "triggered", "expected"),
    [
        (None, False, False, (0, False)),
        (None, True, False, (1, False)),
        (check("ok", 3), True, False, (4, False)),
        (check("alert", 3), True, True, (3, True)),
        (check("alert", 3), False, True, (3, False)),
    ],
)
def test_episodes(last, alert, triggered, expected):
    assert episode_of(last, alert, triggered) == expected


def health(**changes) -> HealthFigures:
    normal = dict(
        requests=1_000,
        latency_p99_ms=40.0,
        client_error_rate=0.01,
        rate_limited_rate=0.0,
        server_error_rate=0.0,
        refused_keys_per_hour=1,
        rate_limited_per_hour=0,
    )
    return HealthFigures(**{**normal, **changes})


SCORES_QUIET = PredictionDrift(psi=0.02, critical_value=0.05, rows=1_000, drifted=False)
SCORES_DRIFTED = PredictionDrift(psi=0.4, critical_value=0.05, rows=1_000, drifted=True)


@pytest.mark.parametrize(
    ("case", "scores", "figures", "kinds", "cause", "says"),
    [
        ("a normal window", SCORES_QUIET, health(), [], None, NO_ALERT_REASON),
        ("scores drifted", SCORES_DRIFTED, health(), ["prediction drift"], "prediction drift", "score PSI 0.400 > 0.1"),
        ("slow answers", SCORES_QUIET, health(latency_p99_ms=900.0), ["latency"], None, "p99 900 ms > 500 ms"),
        ("no answers: no latency", SCORES_QUIET, health(latency_p99_ms=None), [], None, NO_ALERT_REASON),
        ("4xx", SCORES_QUIET, health(client_error_rate=0.2), ["errors"], None, "4xx 20.0% > 5.0% of 1000"),
        ("5xx", SCORES_QUIET, health(server_error_rate=0.02), ["errors"], None, "5xx 2.0% > 1.0%"),
        ("429", SCORES_QUIET, health(rate_limited_rate=0.1), ["errors"], None, "429 10.0% > 5.0%"),
        (
            "probing",
            SCORES_QUIET,
            health(refused_keys_per_hour=120),
            ["security"],
            None,
            "refused keys 120 in one hour >= 30",
        ),
        (
            "scores drifted while probed",
            SCORES_DRIFTED,
            health(rate_limited_per_hour=500),
            ["prediction drift", "security"],
            "prediction drift",
            "rate-limit refusals 500 in one hour >= 300",
        ),
    ],
)
def test_prediction_drift_health_and_security_alerts(case, scores, figures, kinds, cause, says):
    decision = decide_alert(
        drift(0.0),
        None,
        POLICY,
        last_check=check("ok", 2),
        last_episode_triggered=False,
        last_trigger_at=None,
        now=NOW,
        prediction_drift=scores,
        health=figures,
    )
    assert [a.kind for a in decision.alerts] == kinds, case
    assert decision.alert == bool(kinds) and decision.cause == cause, case
    assert decision.triggers_retraining == (cause is not None), case  # health and security only alert
    assert decision.episode == (3 if cause else 2), case  # ... and open no retraining episode
    assert says in decision.reason, case


def test_a_health_alert_between_two_drift_episodes_does_not_join_them():
    after_health_alert = check("alert", 4)
    after_health_alert.retraining_alert = False
    decision = decide_alert(
        drift(0.5),
        None,
        POLICY,
        last_check=after_health_alert,
        last_episode_triggered=True,
        last_trigger_at=NOW - timedelta(hours=24),
        now=NOW,
    )
    assert decision.episode == 5 and decision.triggers_retraining


def test_without_enough_rows_for_drift_labels_and_the_service_still_alert():
    assert [a.kind for a in check_alerts(None, quality(0.1), POLICY, None, health(latency_p99_ms=900.0))] == [
        "quality drop",
        "latency",
    ]
    assert check_alerts(None, None, POLICY, None, health()) == []


@pytest.mark.parametrize(
    ("case", "share", "drop", "last", "episode_triggered", "events"),
    [
        ("quiet: no event", 0.1, None, None, False, []),
        ("drift asks", 0.5, None, None, False, [("mlops.monitoring.alert.drift", "true")]),
        (
            "drift and decay: the cause asks, the other only alerts",
            0.5,
            0.2,
            None,
            False,
            [("mlops.monitoring.alert.drift", "true"), ("mlops.monitoring.alert.quality-drop", "false")],
        ),
        ("decay asks", 0.0, 0.2, None, False, [("mlops.monitoring.alert.quality-drop", "true")]),
        (
            "an episode that already triggered asks nothing",
            0.5,
            None,
            check("alert", 1),
            True,
            [("mlops.monitoring.alert.drift", "false")],
        ),
    ],
)
def test_an_event_per_alert_and_only_the_cause_asks_for_retraining(case, share, drop, last, episode_triggered, events):
    decision = decide_alert(
        drift(share),
        quality(drop) if drop is not None else None,
        POLICY,
        last_check=last,
        last_episode_triggered=episode_triggered,
        last_trigger_at=None,
        now=NOW,
    )
    parameters = {"registered_model": "m", "suite": "s", "data": {}}
    emitted = alert_events(decision, "m", 7, parameters)
    assert [(e.name, e.resource[RETRAIN_LABEL]) for e in emitted] == events, case
    for event in emitted:
        assert event.resource["prefect.resource.id"] == f"{MODEL_RESOURCE}.m"
        assert event.payload["check_id"] == 7 and event.payload["figures"]
        assert event.payload["retraining"] == (parameters if event.resource[RETRAIN_LABEL] == "true" else None)


def test_the_retraining_trigger_in_prefect_yaml_matches_the_events_that_ask():
    (trigger,) = retraining_triggers()
    assert trigger.match.root == {
        "prefect.resource.id": f"{MODEL_RESOURCE}.*",
        RETRAIN_LABEL: "true",
    }
    assert trigger.expect == {alert_event_name(kind) for kind in RETRAINING_KINDS}
    assert set(trigger.parameters) == {"registered_model", "suite", "data", "reason"}
    assert all("event.payload.retraining." in template for template in trigger.parameters.values())
