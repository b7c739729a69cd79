"""The promotion flow: gate a named version against the champion and move the alias (or force it, recorded)."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.run_names import promotion_run_name
from mlops_core.settings import get_settings
from stages.promotion.aliases import PromotionDecision
from tasks.promotion import gate_and_promote


@flow(name="promotion", flow_run_name=promotion_run_name)
def promotion_flow(
    version: int,
    force: bool = False,
    reason: str = "",
    requested_by: str | None = None,
    alias: Literal["champion", "challenger"] | None = None,
) -> PromotionDecision:
    """Promote a registered version when it beats the champion on its holdout, or force it (recorded).

    Args:
        version: The registered model version to promote (its number in the MLflow registry).
        force: Skip the metric gate and move the alias anyway; needs a reason.
        reason: Why; required with force, recorded in the alias audit log and on the version.
        requested_by: Who asked, for the audit log; empty: the user the worker runs as.
        alias: The alias to move (champion or challenger); empty: the configured mode (MLOPS_PROMOTION__MODE).
    """
    return gate_and_promote(get_settings(), version, force, reason, requested_by, alias)
