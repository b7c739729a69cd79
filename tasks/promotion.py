"""Promotion tasks: the metric gate with its alias move, and rollback; each leaves its decision as an artifact."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops_core.settings import Settings
from stages.promotion.aliases import PromotionDecision, promote, rollback
from stages.promotion.report import decision_markdown


def _publish(decision: PromotionDecision) -> PromotionDecision:
    create_markdown_artifact(
        key="promotion-decision",
        markdown=decision_markdown(decision),
        description=f"{decision.model} v{decision.version}: {decision.outcome}",
    )
    get_run_logger().info(
        "%s v%d %s: %s", decision.model, decision.version, decision.outcome, "; ".join(decision.reasons)
    )
    return decision


@task(name="promotion-gate", cache_policy=NO_CACHE)
def gate_and_promote(
    settings: Settings,
    version: int,
    force: bool = False,
    reason: str = "",
    actor: str | None = None,
    alias: str | None = None,
) -> PromotionDecision:
    decision = promote(settings, version, force=force, reason=reason, actor=actor, flow_run_id=flow_run.id, alias=alias)
    return _publish(decision)


@task(name="rollback-champion", cache_policy=NO_CACHE)
def rollback_champion(settings: Settings, to_version: int | None, reason: str, actor: str | None) -> PromotionDecision:
    return _publish(rollback(settings, to_version=to_version, reason=reason, actor=actor, flow_run_id=flow_run.id))
