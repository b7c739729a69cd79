"""Key ids are never NULL: SQLite let a TEXT primary key be NULL; the table is rebuilt there with NOT NULL."""

from alembic import op
from sqlalchemy import Text

revision = "api_keys_0002"
down_revision = "api_keys_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.alter_column("key_id", existing_type=Text, nullable=False)
