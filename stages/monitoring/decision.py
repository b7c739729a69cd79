"""Whether a check alerts, and whether the alert asks for retraining: a pure decision on the check's figures
and the history's facts.

Each alert has a kind and says its figures and thresholds. Drift (the share of drifted input columns at or over
its threshold), prediction drift (the score distribution drifted) and a quality drop (ROC AUC on the champion's
labelled rows below its holdout's by more than the allowed drop) ask for retraining; latency, errors and
security (a burst of refused keys or rate-limit refusals) only alert: a new model fixes none of them.
Retraining alerts come in episodes (a run of alerting checks); an episode triggers one retraining at most,
and no retraining starts within the cooldown after the last one.

Each alert goes out as a Prefect event about the registered model (``alert_events``); the event of the alert
that starts retraining carries the label ``mlops.retrain: "true"`` and the alerting model's own training
parameters, which the retraining deployment's trigger in ``prefect.yaml`` matches and passes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from mlops_core.settings import MonitoringSettings
from stages.monitoring.drift import DriftResult, PredictionDrift
from stages.monitoring.health import HealthFigures
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import QualityResult

NO_ALERT_REASON = "no drift, decay, health or security alert over the thresholds"
Kind = Literal["drift", "prediction drift", "quality drop", "latency", "errors", "security"]
RETRAINING_KINDS: tuple[Kind, ...] = ("drift", "prediction drift", "quality drop")
# The event of an alert is ALERT_EVENT.<kind>, e.g. mlops.monitoring.alert.quality-drop; its resource is the
# registered model. prefect.yaml's retraining trigger names these (a unit test holds them together).
ALERT_EVENT = "mlops.monitoring.alert"
MODEL_RESOURCE = "mlflow.registered-model"
RETRAIN_LABEL = "mlops.retrain"


@dataclass(frozen=True)
class Alert:
    kind: Kind
    figures: str

    @property
    def retrains(self) -> bool:
        return self.kind in RETRAINING_KINDS

    def __str__(self) -> str:
        return f"{self.kind}: {self.figures}"


@dataclass(frozen=True)
class AlertDecision:
    """``reason`` says why the check alerts (or that it does not); ``held_back`` why an alert starts no retraining."""

    alert: bool
    episode: int
    reason: str
    cause: Kind | None = None
    held_back: str | None = None
    alerts: tuple[Alert, ...] = ()

    @property
    def triggers_retraining(self) -> bool:
        return self.cause is not None and self.held_back is None

    @property
    def status(self) -> Literal["ok", "alert"]:
        return "alert" if self.alert else "ok"


class Episode(NamedTuple):
    number: int
    already_triggered: bool


def episode_of(last: CheckRecord | None, alert: bool, last_episode_triggered: bool) -> Episode:
    """The check's episode: a retraining alert after one continues its episode, after any other check opens one."""
    if last is None:
        return Episode(1 if alert else 0, False)
    if alert and last.retraining_alert:
        return Episode(last.episode, last_episode_triggered)
    return Episode(last.episode + 1 if alert else last.episode, False)


def check_alerts(
    drift: DriftResult | None,
    quality: QualityResult | None,
    policy: MonitoringSettings,
    prediction_drift: PredictionDrift | None = None,
    health: HealthFigures | None = None,
) -> list[Alert]:
    """Every alert of the check, retraining kinds first, each with its figures and thresholds; ``drift`` and
    ``prediction_drift`` are None when the window had too few rows to judge them."""
    alerts = []
    if drift and drift.drift_share >= policy.drift_share_threshold:
        columns = ", ".join(drift.drifted_columns)
        alerts.append(
            Alert("drift", f"drift share {drift.drift_share:.2f} >= {policy.drift_share_threshold} ({columns})")
        )
    if prediction_drift and prediction_drift.drifted:
        alerts.append(
            Alert(
                "prediction drift",
                f"score PSI {prediction_drift.psi:.3f} > {policy.column_drift_threshold} and > its null's "
                f"{prediction_drift.critical_value:.3f} at {prediction_drift.rows} rows",
            )
        )
    if quality and quality.drop > policy.quality_drop_threshold:
        alerts.append(
            Alert(
                "quality drop",
                f"ROC AUC {quality.current['roc_auc']:.3f} on {quality.labelled_rows} labelled rows of v"
                f"{quality.version} is {quality.drop:.3f} below the holdout's "
                f"{quality.holdout.get('roc_auc', float('nan')):.3f} (allowed {policy.quality_drop_threshold})",
            )
        )
    if health:
        alerts += health_alerts(health, policy)
    return alerts


def health_alerts(health: HealthFigures, policy: MonitoringSettings) -> list[Alert]:
    alerts = []
    if health.latency_p99_ms is not None and health.latency_p99_ms > policy.latency_p99_ms_threshold:
        alerts.append(
            Alert("latency", f"p99 {health.latency_p99_ms:.0f} ms > {policy.latency_p99_ms_threshold:.0f} ms")
        )
    rates = [
        ("4xx", health.client_error_rate, policy.client_error_rate_threshold),
        ("5xx", health.server_error_rate, policy.server_error_rate_threshold),
        ("429", health.rate_limited_rate, policy.rate_limited_rate_threshold),
    ]
    over = [f"{name} {rate:.1%} > {limit:.1%}" for name, rate, limit in rates if rate > limit]
    if over:
        alerts.append(Alert("errors", f"{', '.join(over)} of {health.requests} requests"))
    bursts = [
        ("refused keys", health.refused_keys_per_hour, policy.refused_keys_per_hour_threshold),
        ("rate-limit refusals", health.rate_limited_per_hour, policy.rate_limited_per_hour_threshold),
    ]
    over = [f"{name} {count} in one hour >= {limit}" for name, count, limit in bursts if count >= limit]
    if over:
        alerts.append(Alert("security", ", ".join(over)))
    return alerts


def decide_alert(
    drift: DriftResult | None,
    quality: QualityResult | None,
    policy: MonitoringSettings,
    *,
    last_check: CheckRecord | None,
    last_episode_triggered: bool,
    last_trigger_at: datetime | None,
    now: datetime,
    prediction_drift: PredictionDrift | None = None,
    health: HealthFigures | None = None,
) -> AlertDecision:
    """The decision for a check ending at ``now``, given the last successful check and the last trigger."""
    alerts = check_alerts(drift, quality, policy, prediction_drift, health)
    retraining = [a for a in alerts if a.retrains]
    episode, already = episode_of(last_check, bool(retraining), last_episode_triggered)
    if not alerts:
        return AlertDecision(alert=False, episode=episode, reason=NO_ALERT_REASON)
    reason = "; ".join(map(str, alerts))
    if not retraining:
        return AlertDecision(alert=True, episode=episode, reason=reason, alerts=tuple(alerts))
    held_back = None
    if already:
        held_back = f"retraining already triggered in episode {episode}"
    elif last_trigger_at is not None and now - last_trigger_at < timedelta(hours=policy.cooldown_hours):
        held_back = f"within the cooldown after the trigger at {last_trigger_at:%Y-%m-%d %H:%M}"
    return AlertDecision(
        alert=True,
        episode=episode,
        reason=reason,
        cause=retraining[0].kind,
        held_back=held_back,
        alerts=tuple(alerts),
    )


def alert_event_name(kind: Kind) -> str:
    return f"{ALERT_EVENT}.{kind.replace(' ', '-')}"


@dataclass(frozen=True)
class AlertEvent:
    """One Prefect event: ``emit_event(event=name, resource=resource, payload=payload)``."""

    name: str
    resource: dict[str, str]
    payload: dict[str, Any]


def alert_events(decision: AlertDecision, model: str, check_id: int, retraining: dict[str, Any]) -> list[AlertEvent]:
    """An event per alert of the check; only the alert that causes a retraining asks for it (label and
    ``retraining``, the alerting model's training parameters), so one check starts one retraining at most."""
    events = []
    for alert in decision.alerts:
        asks = decision.triggers_retraining and alert.kind == decision.cause
        resource = {
            "prefect.resource.id": f"{MODEL_RESOURCE}.{model}",
            "prefect.resource.name": model,
            RETRAIN_LABEL: str(asks).lower(),
        }
        payload = {
            "kind": alert.kind,
            "figures": alert.figures,
            "check_id": check_id,
            "episode": decision.episode,
            "retraining": retraining if asks else None,
            "held_back": decision.held_back if alert.retrains else None,
        }
        events.append(AlertEvent(alert_event_name(alert.kind), resource, payload))
    return events
