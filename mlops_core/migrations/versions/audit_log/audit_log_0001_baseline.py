"""The alias audit log as it was before its schema was versioned."""

from alembic import op

from mlops_core.migrations import baseline

revision = "audit_log_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    baseline.create(op.get_bind(), baseline.AUDIT_LOG)
