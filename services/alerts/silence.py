"""Silence in the device status history: device uptime (coverage) follows the
`device_status_event` rows, which devices write only when they report a status. So that
uptime counts a silent device as offline, as the board and the alert do
(services/core/online.py), the timed rules record a `silent` row when a device that
reported `online` passes the silence threshold, stamped at that moment, and an `online`
row at its latest message once it is heard again. Run only by the leader, on the timer:
the `online` row is at most one timer interval late."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from services.core import online
from services.core.tables import dialect_insert, state_t, status_t


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    checkpoint_id: str
    device_state: str | None  # as reported (checkpoint_state)
    last_seen_at: datetime | None
    last_event_state: str | None  # the newest status history row
    last_event_ts: datetime | None


def silence_rows(
    devices: Iterable[DeviceHistory], now: datetime, silence: timedelta
) -> list[dict[str, Any]]:
    """The status history rows to add so that it tells silence as the board does."""
    rows = []
    for d in devices:
        if d.device_state != online.ONLINE or d.last_seen_at is None:
            continue  # reported offline (already in the history) or never heard
        if online.is_silent(d.last_seen_at, now, silence):
            if d.last_event_state != online.SILENT:
                rows.append(_row(d.checkpoint_id, d.last_seen_at + silence, online.SILENT))
        elif d.last_event_state == online.SILENT and (
            d.last_event_ts is None or d.last_seen_at > d.last_event_ts
        ):
            rows.append(_row(d.checkpoint_id, d.last_seen_at, online.ONLINE))
    return rows


def _row(checkpoint_id: str, at: datetime, state: str) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint_id, "ts": at, "device_ts": at, "state": state}


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_histories(conn: Connection) -> list[DeviceHistory]:
    newest = (
        select(status_t.c.checkpoint_id, func.max(status_t.c.ts).label("ts"))
        .group_by(status_t.c.checkpoint_id)
        .subquery()
    )
    last: dict[str, tuple[int, str, datetime | None]] = {}
    for cp, row_id, state, ts in conn.execute(
        select(status_t.c.checkpoint_id, status_t.c.id, status_t.c.state, status_t.c.ts).join(
            newest,
            and_(status_t.c.checkpoint_id == newest.c.checkpoint_id, status_t.c.ts == newest.c.ts),
        )
    ):
        if cp not in last or row_id > last[cp][0]:  # two rows at one instant: the later
            last[cp] = (row_id, state, _aware(ts))
    out = []
    for cp, device_state, last_seen_at in conn.execute(
        select(state_t.c.checkpoint_id, state_t.c.device_state, state_t.c.last_seen_at)
    ):
        _id, event_state, event_ts = last.get(cp, (0, None, None))
        out.append(DeviceHistory(cp, device_state, _aware(last_seen_at), event_state, event_ts))
    return out


def record_silences(conn: Connection, now: datetime, silence: timedelta) -> int:
    """Add the silence rows due now; returns how many were added."""
    rows = silence_rows(load_histories(conn), now, silence)
    if not rows:
        return 0
    statement = dialect_insert(conn, status_t).on_conflict_do_nothing(
        index_elements=["checkpoint_id", "device_ts", "state"]
    )
    return conn.execute(statement, rows).rowcount or 0
