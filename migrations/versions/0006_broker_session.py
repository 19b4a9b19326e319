"""ingest's MQTT sessions, to notice when the broker lost one

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.core.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broker_session",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("subscription", sa.String(length=512), nullable=False),
        sa.Column("expiry_s", sa.BigInteger(), nullable=False),
        sa.Column("first_connected_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("sessions_lost", sa.Integer(), nullable=False),
        sa.Column("last_lost_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )


def downgrade() -> None:
    op.drop_table("broker_session")
