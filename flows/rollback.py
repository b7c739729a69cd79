"""The rollback flow: move ``champion`` back to the previous champion in the audit log, or to a named version."""

from __future__ import annotations

from prefect import flow

from mlops_core.settings import get_settings
from stages.promotion.aliases import PromotionDecision
from tasks.promotion import rollback_champion


@flow(name="rollback")
def rollback_flow(reason: str, to_version: int | None = None, requested_by: str | None = None) -> PromotionDecision:
    """Undo the last promotion (run again to walk further back), recording who and why."""
    return rollback_champion(get_settings(), to_version, reason, requested_by)
