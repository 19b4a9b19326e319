"""rosters, staffing requirements, fever cases, screening quality

Staff get a duty role (community, police, medical, security, volunteer) and the
checkpoints they may serve; `roster_shift` names who serves where and when;
`staffing_requirement` holds the per-time-of-day rules (count and role mix); duty
events from an unknown staff id are kept but flagged (`unknown_staff`); `fever_case`
follows a fever alert to its re-check and disposition; `screening_quality` keeps the
latest pro-forma-screening verdict per lane for the board.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.core.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _when() -> services.core.db.UTCDateTime:
    return services.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("duty_role", _text(20), nullable=False, server_default="community")
        )
    with op.batch_alter_table("duty_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unknown_staff", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "staff_checkpoint",
        sa.Column("staff_id", _text(64), nullable=False),
        sa.Column("checkpoint_id", _text(64), nullable=False),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoint.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("staff_id", "checkpoint_id"),
    )
    op.create_table(
        "roster_shift",
        sa.Column("checkpoint_id", _text(64), nullable=False),
        sa.Column("staff_id", _text(64), nullable=False),
        sa.Column("starts_at", _when(), nullable=False),
        sa.Column("ends_at", _when(), nullable=False),
        sa.Column("label", _text(20), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoint.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("checkpoint_id", "staff_id", "starts_at", name="uq_roster_shift"),
    )
    op.create_index(
        "ix_roster_shift_cp_starts", "roster_shift", ["checkpoint_id", "starts_at"], unique=False
    )
    op.create_index("ix_roster_shift_starts", "roster_shift", ["starts_at"], unique=False)
    op.create_table(
        "staffing_requirement",
        sa.Column("checkpoint_id", _text(64), nullable=True),
        sa.Column("label", _text(40), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("min_on_duty", sa.Integer(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoint.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_staffing_requirement_cp", "staffing_requirement", ["checkpoint_id"], unique=False
    )
    op.create_table(
        "fever_case",
        sa.Column("alert_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("checkpoint_id", _text(64), nullable=False),
        sa.Column("direction", _text(3), nullable=False),
        sa.Column("reading_id", BIG_ID, nullable=True),
        sa.Column("fever_at", _when(), nullable=False),
        sa.Column("temp_c", sa.Float(), nullable=False),
        sa.Column("recheck_due_at", _when(), nullable=False),
        sa.Column("recheck_reading_id", BIG_ID, nullable=True),
        sa.Column("recheck_temp_c", sa.Float(), nullable=True),
        sa.Column("recheck_at", _when(), nullable=True),
        sa.Column("disposition", _text(32), nullable=True),
        sa.Column("decided_by", _text(64), nullable=True),
        sa.Column("decided_at", _when(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoint.id"]),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index(
        "ix_fever_case_cp_fever", "fever_case", ["checkpoint_id", "fever_at"], unique=False
    )
    op.create_index("ix_fever_case_decided", "fever_case", ["decided_at"], unique=False)
    op.create_table(
        "screening_quality",
        sa.Column("checkpoint_id", _text(64), nullable=False),
        sa.Column("direction", _text(3), nullable=False),
        sa.Column("status", _text(10), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", _when(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoint.id"]),
        sa.PrimaryKeyConstraint("checkpoint_id", "direction"),
    )


def downgrade() -> None:
    op.drop_table("screening_quality")
    op.drop_index("ix_fever_case_decided", table_name="fever_case")
    op.drop_index("ix_fever_case_cp_fever", table_name="fever_case")
    op.drop_table("fever_case")
    op.drop_index("ix_staffing_requirement_cp", table_name="staffing_requirement")
    op.drop_table("staffing_requirement")
    op.drop_index("ix_roster_shift_starts", table_name="roster_shift")
    op.drop_index("ix_roster_shift_cp_starts", table_name="roster_shift")
    op.drop_table("roster_shift")
    op.drop_table("staff_checkpoint")
    with op.batch_alter_table("duty_event", schema=None) as batch_op:
        batch_op.drop_column("unknown_staff")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("duty_role")
