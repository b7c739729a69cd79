"""Every registered version in registration order, written under the lock that numbers it."""

import sqlalchemy as sa
from alembic import op

revision = "audit_log_0002"
down_revision = "audit_log_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_registrations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(256), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("semver", sa.String(40), nullable=False),
        sa.Column("training_run_id", sa.String(64), nullable=False),
    )
