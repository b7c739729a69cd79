"""Whether a check alerts, and whether the alert asks for retraining: a pure decision on the check's figures
and the history's facts.

An alert is drift (the share of drifted columns at or over its threshold) or decay (ROC AUC on labelled rows
below the holdout's by more than the allowed drop). Alerts come in episodes (a run of alerting checks); an
episode triggers one retraining at most, and no retraining starts within the cooldown after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from mlops_core.settings import MonitoringSettings
from stages.monitoring.drift import DriftResult
from stages.monitoring.history import CheckRecord
from stages.monitoring.quality import QualityResult

NO_ALERT_REASON = "no drift or decay over the thresholds"
Cause = Literal["drift", "quality drop"]


@dataclass(frozen=True)
class AlertDecision:
    """``reason`` says why the check alerts (or that it does not); ``held_back`` why an alert starts no retraining."""

    alert: bool
    episode: int
    reason: str
    cause: Cause | None = None
    held_back: str | None = None

    @property
    def triggers_retraining(self) -> bool:
        return self.alert and self.held_back is None

    @property
    def status(self) -> Literal["ok", "alert"]:
        return "alert" if self.alert else "ok"


class Episode(NamedTuple):
    number: int
    already_triggered: bool


def episode_of(last: CheckRecord | None, alert: bool, last_episode_triggered: bool) -> Episode:
    """The check's episode: an alert after an alert continues its episode, an alert after a quiet check opens one."""
    if last is None:
        return Episode(1 if alert else 0, False)
    if alert and last.status == "alert":
        return Episode(last.episode, last_episode_triggered)
    return Episode(last.episode + 1 if alert else last.episode, False)


def decide_alert(
    drift: DriftResult,
    quality: QualityResult | None,
    policy: MonitoringSettings,
    *,
    last_check: CheckRecord | None,
    last_episode_triggered: bool,
    last_trigger_at: datetime | None,
    now: datetime,
) -> AlertDecision:
    """The decision for a check ending at ``now``, given the last successful check and the last trigger."""
    reasons = []
    drifted = drift.drift_share >= policy.drift_share_threshold
    if drifted:
        reasons.append(
            f"drift share {drift.drift_share:.2f} >= {policy.drift_share_threshold} ({', '.join(drift.drifted_columns)})"
        )
    if quality and quality.drop > policy.quality_drop_threshold:
        reasons.append(
            f"ROC AUC {quality.current['roc_auc']:.3f} on {quality.labelled_rows} labelled rows is "
            f"{quality.drop:.3f} below the holdout's {quality.holdout.get('roc_auc', float('nan')):.3f}"
        )
    alert = bool(reasons)
    episode, already = episode_of(last_check, alert, last_episode_triggered)
    if not alert:
        return AlertDecision(alert=False, episode=episode, reason=NO_ALERT_REASON)
    held_back = None
    if already:
        held_back = f"retraining already triggered in episode {episode}"
    elif last_trigger_at is not None and now - last_trigger_at < timedelta(hours=policy.cooldown_hours):
        held_back = f"within the cooldown after the trigger at {last_trigger_at:%Y-%m-%d %H:%M}"
    return AlertDecision(
        alert=True,
        episode=episode,
        reason="; ".join(reasons),
        cause="drift" if drifted else "quality drop",
        held_back=held_back,
    )
