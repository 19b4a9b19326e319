"""partial index on implausible readings (the alert service's sensor-fault count)

For each implausible reading the alert service counts the implausible readings at its
checkpoint within the last minutes. Without this index that count walked every reading
of the checkpoint in the window (or worse); with it, a range of a small index with a
LIMIT.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.core.models.events import IMPLAUSIBLE_READING

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_reading_implausible",
        "reading",
        ["checkpoint_id", "ts", "id"],
        unique=False,
        sqlite_where=sa.text(IMPLAUSIBLE_READING),
        postgresql_where=sa.text(IMPLAUSIBLE_READING),
    )


def downgrade() -> None:
    op.drop_index("ix_reading_implausible", table_name="reading")
