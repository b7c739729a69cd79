"""What the last materialisation wrote to the online store, per feature view and entity: the stamp of the row
written. It was a Parquet file beside the store, which a run on a fresh machine (a Kubernetes work pool) never
sees; in the database every run finds it by URL."""

import sqlalchemy as sa
from alembic import op

revision = "monitoring_history_0004"
down_revision = "monitoring_history_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_materialisations",
        sa.Column("view", sa.String(200), primary_key=True),
        sa.Column("entity_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_ts_us", sa.BigInteger, nullable=False),
    )
