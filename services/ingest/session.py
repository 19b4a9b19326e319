"""Did the broker keep ingest's session? And which old subscription must go?

`judge` is the rule, over plain values; `SessionLedger` is its memory in the database
(one `broker_session` row per ingest client id). Ingest asks on every CONNACK:

- **lost**: it held a persistent session that had not expired, yet the broker says
  "session present: 0". Whatever devices published while ingest was away is gone
  (the broker lost its state, or a client took the session over): an error, not news.
- **stale subscriptions**: a kept session keeps its old subscriptions too. After a
  change from a plain to a shared subscription (or back, or another group), the old
  one would deliver every message a second time; ingest unsubscribes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from services.core.tables import broker_session_t

log = logging.getLogger(__name__)
NEVER_EXPIRES = 0xFFFFFFFF  # MQTT v5: a session expiry interval of 2^32-1 never ends


@dataclass(frozen=True, slots=True)
class SessionRecord:
    subscription: str
    expiry_s: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    lost: bool
    stale_subscriptions: tuple[str, ...]


def judge(
    record: SessionRecord | None,
    session_present: bool,
    subscription: str,
    other_forms: tuple[str, ...],
    now: datetime,
) -> SessionVerdict:
    """`other_forms`: the filters ingest could have held before (plain and shared)."""
    if not session_present:
        expected = record is not None and (
            record.expiry_s >= NEVER_EXPIRES
            or now - record.last_seen_at < timedelta(seconds=record.expiry_s)
        )
        return SessionVerdict(lost=expected, stale_subscriptions=())
    stale = {form for form in other_forms if form != subscription}
    if record is not None and record.subscription != subscription:
        stale.add(record.subscription)
    return SessionVerdict(lost=False, stale_subscriptions=tuple(sorted(stale)))


class SessionLedger:
    """The `broker_session` rows, read and written from paho's network thread."""

    def __init__(self, engine: Engine, client_id: str) -> None:
        self.engine = engine
        self.client_id = client_id

    def load(self) -> SessionRecord | None:
        table = broker_session_t
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.subscription, table.c.expiry_s, table.c.last_seen_at).where(
                    table.c.client_id == self.client_id
                )
            ).first()
        return None if row is None else SessionRecord(row[0], row[1], row[2])

    def connected(self, subscription: str, expiry_s: int, now: datetime, lost: bool) -> None:
        table = broker_session_t
        values = {"subscription": subscription, "expiry_s": expiry_s, "last_seen_at": now}
        if lost:
            values |= {"sessions_lost": table.c.sessions_lost + 1, "last_lost_at": now}
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(table).where(table.c.client_id == self.client_id).values(**values)
            ).rowcount
        if changed:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    table.insert().values(
                        client_id=self.client_id,
                        subscription=subscription,
                        expiry_s=expiry_s,
                        first_connected_at=now,
                        last_seen_at=now,
                        sessions_lost=0,
                    )
                )
        except IntegrityError:  # a replica with the same id got there first: misconfigured
            log.error("two ingest processes use the MQTT client id %r", self.client_id)

    def left(self, now: datetime) -> None:
        """The session's expiry counts from here (a clean stop or a lost connection)."""
        table = broker_session_t
        with self.engine.begin() as conn:
            conn.execute(
                update(table).where(table.c.client_id == self.client_id).values(last_seen_at=now)
            )
