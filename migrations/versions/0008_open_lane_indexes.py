"""partial indexes on the passages and readings screening has yet to pair

Screening reads, for each new passage or reading, the few nearest open partners in
its lane (checkpoint, direction) outwards from its time. These indexes hold only the
open rows, so that read costs the same however many screened rows or unpaired ones
share the window.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.core.models.events import OPEN_PASSAGE, OPEN_READING

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["checkpoint_id", "direction", "ts", "id"]


def upgrade() -> None:
    for name, table, where in (
        ("ix_passage_open_lane", "passage", OPEN_PASSAGE),
        ("ix_reading_open_lane", "reading", OPEN_READING),
    ):
        op.create_index(
            name,
            table,
            COLUMNS,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    op.drop_index("ix_reading_open_lane", table_name="reading")
    op.drop_index("ix_passage_open_lane", table_name="passage")
