"""checkpoint in-service period

Coverage counts a checkpoint's minutes only while it was in service, so a fresh
system's minutes before its checkpoints existed are not counted as unstaffed and
offline: `commissioned_at` and `decommissioned_at` (both optional) bound that period.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.core.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("commissioned_at", "decommissioned_at")


def upgrade() -> None:
    with op.batch_alter_table("checkpoint") as batch:
        for name in COLUMNS:
            batch.add_column(
                sa.Column(name, services.core.db.UTCDateTime(timezone=True), nullable=True)
            )


def downgrade() -> None:
    with op.batch_alter_table("checkpoint") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
