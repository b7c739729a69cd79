"""The A/B evaluation's evidence, kept between runs: each evaluation reads from the prediction log only the rows
logged or labelled since the last one and adds them to what it kept, so an hourly evaluation does not read the
whole log again. The evidence is a compact copy of the experiment's rows (no features), one per experiment
(registered model, champion and challenger versions), so a new experiment starts afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

EVIDENCE_COLUMNS = (
    "prediction_id",
    "ts",
    "model_version",
    "variant",
    "probabilities",
    "ground_truth",
    "ground_truth_ts",
    "paired_id",
)
# Rows are stamped when a request arrives and committed a little later (several service workers write at once):
# each read reaches back this far before the newest row kept, and duplicates are dropped.
LATE_WRITE_MARGIN = timedelta(minutes=5)


def evidence_path(state_dir: Path, model: str, champion: int, challenger: int) -> Path:
    return state_dir / "experiments" / f"{model}-v{champion}-vs-v{challenger}.parquet"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_from(evidence: pd.DataFrame) -> tuple[datetime | None, datetime | None]:
    """Where the next read starts: rows logged since, and older rows labelled since (None, None: read all)."""
    if evidence.empty:
        return None, None
    logged = _utc(pd.Timestamp(evidence["ts"].max()).to_pydatetime()) - LATE_WRITE_MARGIN
    labels = evidence["ground_truth_ts"].dropna()
    labelled = _utc(pd.Timestamp(labels.max()).to_pydatetime()) - LATE_WRITE_MARGIN if len(labels) else logged
    return logged, labelled


def add_rows(evidence: pd.DataFrame, new: pd.DataFrame, versions: tuple[int, int]) -> pd.DataFrame:
    """The kept rows with the new ones of the experiment's versions; a row read again (a label arrived) replaces
    its older copy."""
    new = new[new["model_version"].astype(int).isin(versions)]
    if evidence.empty:
        return new.reset_index(drop=True)
    merged = pd.concat([evidence, new], ignore_index=True)
    return merged.drop_duplicates("prediction_id", keep="last").sort_values("ts").reset_index(drop=True)
