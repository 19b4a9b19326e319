"""partial index on open alerts by type (the alert service's open-alert look-ups)

The re-check looks for open fevers on every batch of readings, and the timed rules for
the open alerts of their types on every tick. Without this index each look-up read the
whole alert table, resolved history included (under a flood, thousands of rows a
batch); with it, the open alerts of a type only, whatever the database's collation.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.core.models.alerts import OPEN_ALERT

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_alert_open_type",
        "alert",
        ["type"],
        unique=False,
        sqlite_where=sa.text(OPEN_ALERT),
        postgresql_where=sa.text(OPEN_ALERT),
    )


def downgrade() -> None:
    op.drop_index("ix_alert_open_type", table_name="alert")
