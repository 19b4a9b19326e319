"""failed key checks per client address, shared by the API replicas

The API blocks an address after CPM_API_AUTH_MAX_FAILURES unknown or revoked keys within
CPM_API_AUTH_WINDOW_S. Counted in this table, not in each process, so the block holds
whichever replica the guesses reach.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_failure",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("window_start_s", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )


def downgrade() -> None:
    op.drop_table("auth_failure")
