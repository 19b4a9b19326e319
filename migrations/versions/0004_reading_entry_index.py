"""index the readings that name their entry

Screening looks up, for every new passage, the stored readings whose `entry_msg_id`
names it; without this index that was a scan of the whole reading table per batch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_reading_cp_entry", "reading", ["checkpoint_id", "entry_msg_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reading_cp_entry", table_name="reading")
