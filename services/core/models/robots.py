"""Requests made to group robots (WeCom, DingTalk, Feishu).

One row per HTTP request, whether it carried one alert event or a summary of several:
the robots limit requests per minute, so this table is what the rate budget counts, and
it says which outbox rows each request covered.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class RobotSend(SQLModel, table=True):
    __tablename__ = "robot_send"
    __table_args__ = (Index("ix_robot_send_route_at", "route_id", "at"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True)
    )
    route_id: int = Field(foreign_key="webhook_route.id")
    at: datetime = Field(sa_type=UTCDateTime)
    summary: bool = Field(description="A summary of several alert events (a burst)")
    outbox_ids: list[int] = Field(default_factory=list, sa_type=JSON)
    ok: bool
    retryable: bool = Field(default=False)
    status_code: int | None = None
    robot_code: int | None = Field(default=None, description="The robot's errcode / code")
    error: str | None = Field(default=None, max_length=500)
    duration_ms: float = 0.0
