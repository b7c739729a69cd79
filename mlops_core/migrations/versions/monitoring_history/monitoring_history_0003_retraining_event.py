"""A check that asks for retraining records the Prefect event that asks (the retraining deployment's trigger
starts the run); checks before this revision started the run themselves and keep its id."""

import sqlalchemy as sa
from alembic import op

revision = "monitoring_history_0003"
down_revision = "monitoring_history_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring_checks") as table:
        table.add_column(sa.Column("retraining_event_id", sa.String(64)))
