"""group robots: webhook route kind, language, mentions; robot_send

A webhook route is now of a kind (standard Standard-Webhooks JSON, or a WeCom, DingTalk
or Feishu group robot), with the language of its messages and whom it @-mentions on
critical alerts. `robot_send` records each request made to a robot: the rate budget
counts it and it names the outbox rows a summary covered.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_route", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="standard",
            )
        )
        batch_op.add_column(
            sa.Column(
                "language",
                sqlmodel.sql.sqltypes.AutoString(length=8),
                nullable=False,
                server_default="zh-CN",
            )
        )
        batch_op.add_column(sa.Column("mentions", sa.JSON(), nullable=True))
    op.create_table(
        "robot_send",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("at", services.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Boolean(), nullable=False),
        sa.Column("outbox_ids", sa.JSON(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("robot_code", sa.Integer(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["route_id"], ["webhook_route.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_robot_send_route_at", "robot_send", ["route_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_robot_send_route_at", table_name="robot_send")
    op.drop_table("robot_send")
    with op.batch_alter_table("webhook_route", schema=None) as batch_op:
        batch_op.drop_column("mentions")
        batch_op.drop_column("language")
        batch_op.drop_column("kind")
