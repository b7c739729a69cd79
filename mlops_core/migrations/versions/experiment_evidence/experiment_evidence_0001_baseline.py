"""The A/B evidence: the rows of each experiment read from the prediction log so far (no features)."""

import sqlalchemy as sa
from alembic import op

revision = "experiment_evidence_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ab_evidence",
        sa.Column("experiment", sa.String(300), primary_key=True),
        sa.Column("prediction_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(20), nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("ground_truth", sa.String(200)),
        sa.Column("ground_truth_ts", sa.DateTime(timezone=True)),
        sa.Column("paired_id", sa.String(64)),
    )
