"""Promotion and rollback of registry aliases: the gate's verdict acted on, each move recorded in the audit log.

The decision itself is the pure function in ``stages.promotion.gate``; this module gathers its inputs (the
version's holdout, both models' scores) and carries it out. Decisions and their reasons are written as tags on
the version; forced promotions say who forced them.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from mlops_core import registry
from mlops_core.settings import PromotionSettings, Settings
from stages.promotion.audit import AliasMove, AuditLog, champion_stack
from stages.promotion.gate import gate
from stages.training.tracking import RegisteredVersion

_TAG_LIMIT = 4900  # MLflow model version tag values hold at most 5000 characters

Outcome = Literal["promoted", "rejected", "forced", "rolled-back"]


class PromotionError(ValueError):
    """A request that cannot be carried out; nothing was changed."""


class PromotionDecision(BaseModel):
    """What was decided about one version, and why: recorded on the version and shown as an artifact."""

    model: str
    version: int
    semver: str
    alias: str
    outcome: Outcome
    moved: bool
    previous_version: int | None
    reasons: list[str]
    candidate_metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    test: dict[str, float | str | int] | None = None
    thresholds: dict[str, object] = Field(default_factory=dict)
    actor: str
    flow_run_id: str | None = None
    decided_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def about(cls, version: ModelVersion, *, outcome: Outcome, **fields: object) -> PromotionDecision:
        """A decision on a registered version; every outcome but "rejected" moves the alias."""
        return cls(
            model=version.name,
            version=int(version.version),
            semver=version.tags[registry.TAG_SEMVER],
            outcome=outcome,
            moved=outcome != "rejected",
            **{"actor": "", **fields},
        )


class TrainingOutcome(BaseModel):
    """What the training flow returns: the version it registered and what the gate decided about it."""

    registered: RegisteredVersion
    promotion: PromotionDecision


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def alias_version(client: MlflowClient, model: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _existing_version(client: MlflowClient, model: str, version: int) -> ModelVersion:
    try:
        found = client.get_model_version(model, str(version))
    except MlflowException as exc:
        raise PromotionError(f"version {version} of model {model!r} does not exist") from exc
    missing = [tag for tag in registry.REQUIRED_VERSION_TAGS if not found.tags.get(tag)]
    if missing:
        raise PromotionError(f"version {version} of {model!r} lacks required tags {missing}; register it with the flow")
    return found


def evaluation_data(client: MlflowClient, version: ModelVersion) -> tuple[pd.DataFrame, pd.Series]:
    """The holdout rows logged with the version's training run, and their labels."""
    run_id = version.tags[registry.TAG_TRAINING_RUN_ID]
    target = client.get_run(run_id).data.params.get("target")
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=registry.EVALUATION_ARTIFACT)
    frame = pd.read_parquet(path)
    return frame.drop(columns=[target]), frame[target]


def positive_probability(model_uri: str, rows: pd.DataFrame) -> np.ndarray:
    """Scores of a registered model on ``rows``; raises PromotionError when the rows lack its inputs."""
    names = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    missing = sorted(set(names) - set(rows.columns))
    if missing:
        raise PromotionError(f"{model_uri} needs columns the evaluation rows lack: {missing}")
    model = mlflow.sklearn.load_model(model_uri)
    return model.predict_proba(rows[names])[:, 1]


def _record_on_version(client: MlflowClient, decision: PromotionDecision) -> None:
    details = decision.model_dump(mode="json", exclude={"reasons", "model", "version"})
    tags = {
        registry.TAG_PROMOTION_OUTCOME: decision.outcome,
        registry.TAG_PROMOTION_ALIAS: decision.alias,
        registry.TAG_PROMOTION_REASONS: "; ".join(decision.reasons)[:_TAG_LIMIT],
        registry.TAG_PROMOTION_PREVIOUS_VERSION: str(decision.previous_version or ""),
        registry.TAG_PROMOTION_ACTOR: decision.actor,
        registry.TAG_PROMOTION_DECIDED_AT: decision.decided_at.isoformat(),
        registry.TAG_PROMOTION_DETAILS: json.dumps(details, default=str)[:_TAG_LIMIT],
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model, str(decision.version), key, value)


@contextmanager
def alias_transaction(client: MlflowClient, audit: AuditLog, model: str) -> Iterator[AliasMoves]:
    """Serialise alias moves of ``model``; if the audit record cannot be committed, the aliases are put back."""
    moves = AliasMoves(client)
    try:
        with audit.exclusive(model) as connection:
            moves.connection = connection
            yield moves
    except BaseException:
        moves.undo()
        raise


class AliasMoves:
    """Moves made in one audit transaction: each is recorded before MLflow's alias is changed."""

    def __init__(self, client: MlflowClient):
        self.client = client
        self.connection: Connection | None = None
        self._done: list[AliasMove] = []

    def move(self, move: AliasMove) -> int:
        """Record ``move``, then set MLflow's alias; returns the audit record's id."""
        record_id = AuditLog.record(self.connection, move)
        self._set(move.model, move.alias, move.to_version)
        self._done.append(move)
        return record_id

    def undo(self) -> None:
        for move in reversed(self._done):
            self._set(move.model, move.alias, move.from_version)

    def _set(self, model: str, alias: str, version: int | None) -> None:
        if version is None:
            self.client.delete_registered_model_alias(model, alias)
        else:
            self.client.set_registered_model_alias(model, alias, str(version))


def promote(
    settings: Settings,
    version: int,
    *,
    force: bool = False,
    reason: str = "",
    actor: str | None = None,
    flow_run_id: str | None = None,
    alias: str | None = None,
    improvement_shown_by: str | None = None,
) -> PromotionDecision:
    """Gate ``version`` against the current champion and move the alias when it passes (or when forced).
    ``improvement_shown_by``: the evidence that it is better from elsewhere (an A/B test); the gate's guards
    still hold."""
    policy = settings.promotion
    model = settings.mlflow.registered_model
    actor = actor or current_actor()
    if force and not reason.strip():
        raise PromotionError("a forced promotion needs a reason")
    client = registry.connect(settings)
    audit = AuditLog(settings.audit_url)
    candidate = _existing_version(client, model, version)
    with alias_transaction(client, audit, model) as moves:
        champion = alias_version(client, model, registry.CHAMPION)
        target_alias = alias or (registry.CHAMPION if champion is None else policy.mode)
        holder = alias_version(client, model, target_alias)
        if holder is not None and int(holder.version) == version:
            raise PromotionError(f"version {version} is already {target_alias}; nothing to do")
        if champion is not None:
            _check_schema(candidate, champion)
        previous = int(holder.version) if holder is not None else None
        if force:
            decision = PromotionDecision.about(
                candidate,
                alias=target_alias,
                outcome="forced",
                previous_version=previous,
                reasons=[f"forced by {actor}: {reason}"],
                actor=actor,
                flow_run_id=flow_run_id,
            )
        else:
            decision = _gated_decision(
                client, model, candidate, champion, target_alias, previous, policy, improvement_shown_by
            )
            decision.actor, decision.flow_run_id = actor, flow_run_id
            if reason:
                decision.reasons.append(f"requested: {reason}")
        if decision.moved:
            moves.move(
                AliasMove(
                    model=model,
                    alias=target_alias,
                    from_version=previous,
                    to_version=version,
                    action="promote",
                    forced=force,
                    actor=actor,
                    flow_run_id=flow_run_id,
                    reason="; ".join(decision.reasons),
                    details={"outcome": decision.outcome, "semver": decision.semver},
                )
            )
            if target_alias == registry.CHAMPION:
                clear_challenger_if(moves, model, version, actor, flow_run_id)
        _record_on_version(client, decision)
    return decision


def _check_schema(candidate: ModelVersion, champion: ModelVersion) -> None:
    same_schema = candidate.tags.get(registry.TAG_SIGNATURE_DIGEST) == champion.tags.get(registry.TAG_SIGNATURE_DIGEST)
    same_major = (
        registry.SemVer.parse(candidate.tags[registry.TAG_SEMVER]).major
        == registry.SemVer.parse(champion.tags[registry.TAG_SEMVER]).major
    )
    if not same_schema and same_major:
        raise PromotionError(
            f"version {candidate.version} has another input schema than champion {champion.version} "
            f"but the same MAJOR semver ({candidate.tags[registry.TAG_SEMVER]} vs {champion.tags[registry.TAG_SEMVER]}); "
            "register it again so its MAJOR is bumped"
        )


def _gated_decision(
    client: MlflowClient,
    model: str,
    candidate: ModelVersion,
    champion: ModelVersion | None,
    target_alias: str,
    previous: int | None,
    policy: PromotionSettings,
    improvement_shown_by: str | None = None,
) -> PromotionDecision:
    rows, labels = evaluation_data(client, candidate)
    truth = labels.to_numpy().astype(int)
    candidate_scores = positive_probability(f"models:/{model}/{candidate.version}", rows)
    champion_scores = None
    if champion is not None:
        try:
            champion_scores = positive_probability(f"models:/{model}/{champion.version}", rows)
        except PromotionError as exc:
            return PromotionDecision.about(
                candidate,
                alias=target_alias,
                outcome="rejected",
                previous_version=previous,
                reasons=[f"the champion cannot score this version's holdout ({exc}); promote with force"],
            )
    verdict = gate(truth, candidate_scores, champion_scores, policy, improvement_shown_by)
    return PromotionDecision.about(
        candidate,
        alias=target_alias,
        outcome="promoted" if verdict.passes else "rejected",
        previous_version=previous,
        reasons=verdict.reasons,
        candidate_metrics=verdict.candidate_metrics,
        champion_metrics=verdict.champion_metrics,
        test=verdict.test,
        thresholds={
            "primary_metric": policy.primary_metric,
            "min_improvement": policy.min_improvement,
            "guard_tolerances": policy.guard_tolerances,
            "floor": policy.floor if champion is None else {},
            "evaluated_rows": len(truth),
            "champion_version": int(champion.version) if champion is not None else None,
        },
    )


def clear_challenger_if(
    moves: AliasMoves, model: str, version: int, actor: str, flow_run_id: str | None, reason: str | None = None
) -> None:
    """A challenger that became champion is no longer a challenger."""
    challenger = alias_version(moves.client, model, registry.CHALLENGER)
    if challenger is None or int(challenger.version) != version:
        return
    _clear_challenger(moves, model, version, actor, flow_run_id, reason or f"version {version} became champion")


def _clear_challenger(
    moves: AliasMoves, model: str, version: int, actor: str, flow_run_id: str | None, reason: str
) -> None:
    moves.move(
        AliasMove(
            model=model,
            alias=registry.CHALLENGER,
            from_version=version,
            to_version=None,
            action="clear",
            actor=actor,
            flow_run_id=flow_run_id,
            reason=reason,
        )
    )


def retire_challenger(
    settings: Settings, *, reason: str, actor: str | None = None, flow_run_id: str | None = None
) -> int:
    """Remove the challenger alias (the champion stays), recorded in the audit log; returns the retired version."""
    if not reason.strip():
        raise PromotionError("retiring a challenger needs a reason")
    model = settings.mlflow.registered_model
    client = registry.connect(settings)
    with alias_transaction(client, AuditLog(settings.audit_url), model) as moves:
        challenger = alias_version(client, model, registry.CHALLENGER)
        if challenger is None:
            raise PromotionError(f"{model!r} has no challenger to retire")
        _clear_challenger(moves, model, int(challenger.version), actor or current_actor(), flow_run_id, reason)
    return int(challenger.version)


def rollback(
    settings: Settings,
    *,
    to_version: int | None = None,
    reason: str,
    actor: str | None = None,
    flow_run_id: str | None = None,
) -> PromotionDecision:
    """Move ``champion`` back to the previous champion from the audit log, or to a named version."""
    if not reason.strip():
        raise PromotionError("a rollback needs a reason")
    model = settings.mlflow.registered_model
    actor = actor or current_actor()
    client = registry.connect(settings)
    audit = AuditLog(settings.audit_url)
    with alias_transaction(client, audit, model) as moves:
        champion = alias_version(client, model, registry.CHAMPION)
        current = int(champion.version) if champion is not None else None
        stack = champion_stack(audit.history(model, registry.CHAMPION, moves.connection))
        if to_version is None:
            earlier = [v for v in stack if v != current]
            if current is None or not earlier:
                raise PromotionError(f"no earlier champion of {model!r} in the audit log to roll back to")
            to_version = earlier[-1]
        target = _existing_version(client, model, to_version)
        if to_version == current:
            raise PromotionError(f"version {to_version} is already champion; nothing to do")
        if champion is not None:
            _check_schema(target, champion)
        decision = PromotionDecision.about(
            target,
            alias=registry.CHAMPION,
            outcome="rolled-back",
            previous_version=current,
            reasons=[f"rollback by {actor} from version {current}: {reason}"],
            actor=actor,
            flow_run_id=flow_run_id,
        )
        moves.move(
            AliasMove(
                model=model,
                alias=registry.CHAMPION,
                from_version=current,
                to_version=to_version,
                action="rollback",
                actor=actor,
                flow_run_id=flow_run_id,
                reason=reason,
                details={"semver": decision.semver},
            )
        )
        _record_on_version(client, decision)
    return decision
