"""The promotion flow: gate a named version against the champion and move the alias (or force it, recorded)."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from mlops_core.settings import get_settings
from stages.promotion.aliases import PromotionDecision
from tasks.promotion import gate_and_promote


@flow(name="promotion")
def promotion_flow(
    version: int,
    force: bool = False,
    reason: str = "",
    requested_by: str | None = None,
    alias: Literal["champion", "challenger"] | None = None,
) -> PromotionDecision:
    """Promote ``version`` when it beats the champion on its holdout; ``force`` skips the gate and needs a reason."""
    return gate_and_promote(get_settings(), version, force, reason, requested_by, alias)
