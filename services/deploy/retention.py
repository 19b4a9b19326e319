"""Data retention: delete raw event rows older than `retention_days`, keep the roll-ups.

Raw rows (passages, readings, duty and device-status events, dead letters) grow with
every message; `coverage_rollup` holds the hourly per-checkpoint counts the coverage
reports need, so history stays answerable after the raw rows are gone. Deletes run in
bounded chunks so neither database holds a long lock while ingest keeps writing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from services.core.db import utcnow
from services.core.models import DeadLetter, DeviceStatusEvent, DutyEvent, Passage, Reading
from services.core.tables import table_of

log = logging.getLogger("services.deploy.retention")

CHUNK_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class RawTable:
    model: Any
    time_column: str  # the event time: when it happened (or arrived, for dead letters)


RAW_TABLES = (
    RawTable(Passage, "ts"),
    RawTable(Reading, "ts"),
    RawTable(DutyEvent, "ts"),
    RawTable(DeviceStatusEvent, "ts"),
    RawTable(DeadLetter, "received_at"),
)


def retention_cutoff(now: datetime, retention_days: int) -> datetime | None:
    """Rows strictly older than this go; None when retention is off (0 days)."""
    if retention_days <= 0:
        return None
    return now - timedelta(days=retention_days)


def purge_raw_rows(
    engine: Engine, cutoff: datetime, chunk_rows: int = CHUNK_ROWS
) -> dict[str, int]:
    """Delete raw rows with event time before `cutoff`; returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for raw in RAW_TABLES:
        table = table_of(raw.model)
        when = table.c[raw.time_column]
        total = 0
        while True:
            ids = select(table.c.id).where(when < cutoff).limit(chunk_rows).scalar_subquery()
            with engine.begin() as conn:
                count = conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
            total += count
            if count < chunk_rows:
                break
        deleted[table.name] = total
    return deleted


def run_retention(
    engine: Engine, retention_days: int, now: datetime | None = None
) -> dict[str, int]:
    """The job: `cpmon retention`, or on a schedule (cron, a compose service)."""
    cutoff = retention_cutoff(now or utcnow(), retention_days)
    if cutoff is None:
        log.info("retention is off (CPM_RETENTION_DAYS=0): nothing deleted")
        return {}
    deleted = purge_raw_rows(engine, cutoff)
    log.info(
        "retention: deleted rows older than %s: %s",
        cutoff.isoformat(timespec="seconds"),
        ", ".join(f"{n} {name}" for name, n in deleted.items()),
    )
    return deleted
