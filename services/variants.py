"""Which variant answers a request, and scoring the challenger so that its faults never reach the caller.

Assignment hashes a stable unit (an entity or session id sent in a header, else the API key id, as configured)
with a salt naming the challenger version: the same caller keeps its variant for one experiment, and a new
challenger reshuffles callers so an earlier experiment does not leak into the next. The hash is compared with
the challenger's share, so raising the share only moves callers from the champion to the challenger, never
back. Without a unit the draw is random.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import numpy as np

from mlops_core.prediction_log import VARIANT_CHALLENGER, VARIANT_CHAMPION, VARIANT_SHADOW
from mlops_core.registry import ServingMode
from services.inputs import Columns, column_array, row_count
from services.models import ServedModel

CHAMPION, CHALLENGER, SHADOW = VARIANT_CHAMPION, VARIANT_CHALLENGER, VARIANT_SHADOW
_SCALE = float(16**15)


class ChallengerFault(Exception):
    """The challenger could not answer; ``reason`` labels the fault counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def assignment_unit(sticky_by: Sequence[str], session: str | None, key_id: str | None) -> str | None:
    """The first configured identity the request carries, prefixed so a session id never collides with a key id."""
    present = {"session": session, "key": key_id}
    for source in sticky_by:
        if present[source]:
            return f"{source}:{present[source]}"
    return None


def position(unit: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the unit and the salt."""
    return int(hashlib.sha256(f"{salt}|{unit}".encode()).hexdigest()[:15], 16) / _SCALE


def assign(mode: ServingMode, unit: str | None, salt: str, draw: Callable[[], float] = random.random) -> str:
    """The variant that answers: the challenger for its share of units in A/B mode, else the champion."""
    if mode.mode != "ab" or mode.challenger_share <= 0:
        return CHAMPION
    at = position(unit, salt) if unit is not None else draw()
    return CHALLENGER if at < mode.challenger_share else CHAMPION


def challenger_scores(model: ServedModel | None, columns: Columns) -> np.ndarray:
    """The challenger's probabilities for columns checked against the champion's inputs; raises ChallengerFault."""
    if model is None:
        raise ChallengerFault("missing", "no challenger loaded")
    lacking = sorted({r.name for r in model.rules if r.required} - set(columns))
    if lacking:
        raise ChallengerFault("schema", f"needs fields the champion's inputs lack: {lacking}")
    rows = row_count(columns)
    absent = {r.name: column_array([None] * rows, r.kind) for r in model.rules if r.name not in columns}
    try:
        probabilities = model.predict_columns({**columns, **absent})
    except Exception as exc:
        raise ChallengerFault("error", f"{type(exc).__name__}: {exc}") from exc
    if probabilities.shape != (rows, len(model.classes)) or not np.isfinite(probabilities).all():
        raise ChallengerFault("error", "non-finite or misshapen probabilities")
    return probabilities
