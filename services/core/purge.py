"""The end-of-emergency purge: personal data deleted, what was deleted recorded.

When the purpose ends, epidemic rules (and PIPL art. 47) ask for deletion. This deletes
every row that names or identifies a member of the public (passages, readings, dead
letters, the people registry with passes, vehicles and quarantine periods), strips
alerts and queued messages of their subjects and details, and keeps what is not
personal: the hourly coverage roll-ups, checkpoints, sites, staff, alert counts and
times. The audit log gets one `privacy.purge` record with the row counts, written in
the same transaction, so the deletion itself is on record.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, String, cast, delete, insert, literal, update

from services.core.db import utcnow
from services.core.tables import (
    alert_t,
    audit_t,
    dead_letter_t,
    outbox_t,
    pass_t,
    passage_t,
    person_t,
    quarantine_t,
    reading_t,
    vehicle_t,
)

# children before parents (passages name people, passes and vehicles)
DELETED = (
    ("passage", passage_t),
    ("reading", reading_t),
    ("dead_letter", dead_letter_t),
    ("quarantine", quarantine_t),
    ("pass", pass_t),
    ("vehicle", vehicle_t),
    ("person", person_t),
)


def purge_personal_data(engine: Engine, actor: str, reason: str) -> dict[str, int]:
    """Delete it all in one transaction; returns the rows affected per table."""
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name, table in DELETED:
            counts[name] = int(conn.execute(delete(table)).rowcount or 0)
        counts["alert (anonymised)"] = int(
            conn.execute(
                update(alert_t).values(
                    subject=literal("purged-") + cast(alert_t.c.id, String),
                    details={},
                )
            ).rowcount
            or 0
        )
        counts["outbox (cancelled)"] = int(
            conn.execute(
                update(outbox_t)
                .where(outbox_t.c.state == "pending")
                .values(state="cancelled", last_error="cancelled: personal data purged")
            ).rowcount
            or 0
        )
        counts["outbox (emptied)"] = int(
            conn.execute(update(outbox_t).values(payload="{}")).rowcount or 0
        )
        detail: dict[str, Any] = {"reason": reason, "deleted": counts}
        conn.execute(
            insert(audit_t).values(
                at=utcnow(),
                api_key_id=None,
                role="cli",
                action="privacy.purge",
                resource=f"database (by {actor})"[:200],
                detail=json.dumps(detail, ensure_ascii=False),
                request_id=None,
            )
        )
    return counts
