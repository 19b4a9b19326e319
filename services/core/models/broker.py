"""What ingest remembers of its MQTT sessions, so it can tell when the broker lost one.

A persistent session holds what devices publish while ingest is away. If the broker
comes back without it (its persistence file lost, or another client took the session
over) those messages are gone, and the only trace is MQTT's "session present: 0" on
the next connection. One row per ingest client id keeps what ingest expected.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime


class BrokerSession(SQLModel, table=True):
    __tablename__ = "broker_session"

    client_id: str = Field(primary_key=True, max_length=128)
    subscription: str = Field(max_length=512, description="The topic filter it holds")
    expiry_s: int = Field(
        sa_type=BigInteger, description="The session expiry it asked for (2^32-1: never)"
    )
    first_connected_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, description="Last connect or leave")
    sessions_lost: int = Field(default=0)
    last_lost_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
