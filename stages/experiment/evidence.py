"""The A/B evaluation's evidence, kept between runs: each evaluation reads from the prediction log only the rows
logged or labelled since the last one and adds them to what it kept, so an hourly evaluation does not read the
whole log again. The evidence is a compact copy of the experiment's rows (no features), one set per experiment
(registered model, champion and challenger versions), so a new experiment starts afresh. It lives in a database
by URL (``experiment.evidence_url``), so an evaluation on any worker continues where the last one stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, delete, select

from mlops_core import db, migrations

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


_metadata = MetaData()
evidence_rows = Table(
    "ab_evidence",
    _metadata,
    Column("experiment", String(300), primary_key=True),
    Column("prediction_id", String(64), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("variant", String(20), nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("ground_truth", String(200)),
    Column("ground_truth_ts", DateTime(timezone=True)),
    Column("paired_id", String(64)),
)
# Rows deleted per statement when replaced: well under every database's limit of bound parameters.
_REPLACE_CHUNK = 500


def experiment_key(model: str, champion: int, challenger: int) -> str:
    return f"{model}-v{champion}-vs-v{challenger}"


class EvidenceStore:
    """The experiments' evidence rows in the database at ``url``."""

    def __init__(self, url: str) -> None:
        self.engine = db.engine_for(url, migrations.EXPERIMENT_EVIDENCE)

    def load(self, experiment: str) -> pd.DataFrame:
        query = (
            select(*(evidence_rows.c[name] for name in EVIDENCE_COLUMNS))
            .where(evidence_rows.c.experiment == experiment)
            .order_by(evidence_rows.c.ts)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).mappings().all()
        return pd.DataFrame(found, columns=list(EVIDENCE_COLUMNS))

    def save(self, experiment: str, rows: pd.DataFrame) -> None:
        """Store ``rows`` (new, or read again because a label arrived) in one transaction, replacing older
        copies: a failed save leaves the evidence as the last evaluation kept it."""
        if rows.empty:
            return
        records = [
            {**record, "experiment": experiment}
            for record in rows[list(EVIDENCE_COLUMNS)].astype(object).where(rows.notna(), None).to_dict("records")
        ]
        with self.engine.begin() as connection:
            ids = rows["prediction_id"].tolist()
            for start in range(0, len(ids), _REPLACE_CHUNK):
                connection.execute(
                    delete(evidence_rows).where(
                        evidence_rows.c.experiment == experiment,
                        evidence_rows.c.prediction_id.in_(ids[start : start + _REPLACE_CHUNK]),
                    )
                )
            connection.execute(evidence_rows.insert(), records)

    def close(self) -> None:
        self.engine.dispose()


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


def of_experiment(new: pd.DataFrame, versions: tuple[int, int]) -> pd.DataFrame:
    """The rows read from the log that belong to the experiment's two versions."""
    return new[new["model_version"].astype(int).isin(versions)].reset_index(drop=True)


def add_rows(evidence: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The kept rows with the experiment's new ones; a row read again (a label arrived) replaces its older copy."""
    if evidence.empty:
        return new.reset_index(drop=True)
    merged = pd.concat([evidence, new], ignore_index=True)
    # The evidence and the log may be different databases; SQLite returns naive UTC times, PostgreSQL aware ones.
    merged["ts"] = pd.to_datetime(merged["ts"], utc=True, format="mixed")
    return merged.drop_duplicates("prediction_id", keep="last").sort_values("ts").reset_index(drop=True)
