"""A triggered check records the Prefect event that asks for retraining (the deployment trigger starts the run),
not a flow run it started itself."""

from alembic import op

revision = "monitoring_history_0003"
down_revision = "monitoring_history_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitoring_checks") as table:
        table.alter_column("retraining_run_id", new_column_name="retraining_event_id")
