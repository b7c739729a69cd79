"""The rollback flow: move ``champion`` back to the previous champion in the audit log, or to a named version."""

from __future__ import annotations

from prefect import flow

from flows.run_names import rollback_run_name
from mlops_core.settings import get_settings
from stages.promotion.aliases import PromotionDecision
from tasks.promotion import rollback_champion


@flow(name="rollback", flow_run_name=rollback_run_name)
def rollback_flow(reason: str, to_version: int | None = None, requested_by: str | None = None) -> PromotionDecision:
    """Undo the last promotion (run again to walk further back), recording who and why.

    Args:
        reason: Why the champion is rolled back; recorded in the alias audit log and on the version.
        to_version: Move champion to this version instead of the previous champion in the audit log.
        requested_by: Who asked, for the audit log; empty: the user the worker runs as.
    """
    return rollback_champion(get_settings(), to_version, reason, requested_by)
