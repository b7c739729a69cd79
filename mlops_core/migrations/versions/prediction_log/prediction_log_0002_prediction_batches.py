"""The batch journal: a ``/predict_batch`` call committed as one record, expanded into ``predictions`` rows later."""

import sqlalchemy as sa
from alembic import op

revision = "prediction_log_0002"
down_revision = "prediction_log_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("batch_id", sa.String(36), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("model_semver", sa.String(40)),
        sa.Column("variant", sa.String(20), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("expanded", sa.Integer, nullable=False),
        sa.Column("rows", sa.LargeBinary, nullable=False),
    )
