"""Whether a check raised an alert that asks for retraining: a health or security alert alerts without
opening or continuing a retraining episode. Every alert before this revision was a retraining one."""

import sqlalchemy as sa
from alembic import op

revision = "monitoring_history_0002"
down_revision = "monitoring_history_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring_checks") as table:
        table.add_column(sa.Column("retraining_alert", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute("UPDATE monitoring_checks SET retraining_alert = (status = 'alert')")
