"""Feature definitions for the loan applicant: what an application knew about its applicant at that moment.

Each feature row is stamped with its event time (``application_ts`` for rows from the training batches, the
update time for rows written by ``mlops features update``). Training sets join on that stamp, so an application
only ever sees values recorded at or before it; serving reads the newest row per applicant from the online store.
``as_of`` repeats the stamp as a feature: a joined row without it had no feature row at all (the file offline
store returns such rows with empty values rather than dropping them), and answers by entity report it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Feast takes seconds to import: only what builds the store pays for it
    from feast import Entity, FeatureView

PROJECT = "loan_default"
VIEW = "applicant_features"
ENTITY = "applicant"
JOIN_KEY = "applicant_id"
EVENT_TIMESTAMP = "event_ts"
AS_OF = "as_of"

INTEGER_FEATURES = ["age", "loan_term_months", "open_accounts", "delinquencies_2y"]
FLOAT_FEATURES = [
    "annual_income",
    "employment_years",
    "credit_score",
    "loan_amount",
    "interest_rate",
    "debt_to_income",
    "credit_utilization",
]
TEXT_FEATURES = ["home_ownership", "loan_purpose", "employment_type", "region", "application_channel"]
FEATURES = INTEGER_FEATURES + FLOAT_FEATURES + TEXT_FEATURES


def offline_rows(store_dir: Path, view: str) -> str:
    """Where a view's offline rows live under the store's directory: one Parquet file per day or update."""
    return str(store_dir / "offline" / view / "*.parquet")


def applicant_entity() -> Entity:
    from feast import Entity, ValueType

    return Entity(name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.INT64, description="A loan applicant.")


def applicant_features(name: str, offline_path: str, ttl: timedelta) -> FeatureView:
    """The applicant view over the Parquet rows at ``offline_path`` (a glob); ``ttl`` of zero means no age limit."""
    from feast import FeatureView, Field, FileSource
    from feast.types import Float64, Int64, String, UnixTimestamp

    schema = (
        [Field(name=n, dtype=Int64) for n in INTEGER_FEATURES]
        + [Field(name=n, dtype=Float64) for n in FLOAT_FEATURES]
        + [Field(name=n, dtype=String) for n in TEXT_FEATURES]
        + [Field(name=AS_OF, dtype=UnixTimestamp)]
    )
    return FeatureView(
        name=name,
        entities=[applicant_entity()],
        ttl=ttl,
        schema=schema,
        source=FileSource(name=f"{name}_rows", path=offline_path, timestamp_field=EVENT_TIMESTAMP),
        online=True,
        description="Applicant and loan attributes as known at each application or update.",
    )
