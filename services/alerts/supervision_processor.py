"""The supervision alerts on the alert service's timer: reads open findings and resumed
enterprises, raises and resolves (the rules: supervision_rules.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from services.alerts import store
from services.alerts.event_rules import AlertType, Finding
from services.alerts.supervision_rules import (
    OpenFinding,
    ResumedFact,
    enterprise_unchecked,
    rectification_overdue,
)
from services.core.models.supervision import (
    Enterprise,
    FindingStatus,
    Inspection,
    ResumptionStatus,
)
from services.core.models.supervision import (
    Finding as FindingRow,
)
from services.core.tables import checkpoint_t

log = logging.getLogger(__name__)
finding_t = FindingRow.__table__  # type: ignore[attr-defined]
enterprise_t = Enterprise.__table__  # type: ignore[attr-defined]
inspection_t = Inspection.__table__  # type: ignore[attr-defined]


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def anchors(conn: Connection) -> dict[str, str]:
    """The first active checkpoint of each site: what its supervision alerts are filed under."""
    rows = conn.execute(
        select(checkpoint_t.c.site_id, func.min(checkpoint_t.c.id))
        .where(checkpoint_t.c.active.is_(True))
        .group_by(checkpoint_t.c.site_id)
    )
    return {site: cp for site, cp in rows}


def load_open_findings(
    conn: Connection, anchor: dict[str, str], now: datetime
) -> list[OpenFinding]:
    rows = conn.execute(
        select(finding_t, enterprise_t.c.name.label("enterprise_name"))
        .outerjoin(enterprise_t, enterprise_t.c.id == finding_t.c.enterprise_id)
        .where(finding_t.c.status == FindingStatus.OPEN.value, finding_t.c.deadline < now)
    ).all()
    return [
        OpenFinding(
            r.id,
            r.site_id,
            anchor[r.site_id],
            r.item_code,
            r.reason,
            _aware(r.deadline),
            r.enterprise_name,
        )
        for r in rows
        if r.site_id in anchor
    ]


def load_resumed(conn: Connection, anchor: dict[str, str]) -> list[ResumedFact]:
    checked = (
        select(func.count())
        .where(
            inspection_t.c.enterprise_id == enterprise_t.c.id, inspection_t.c.signed_at.is_not(None)
        )
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            enterprise_t.c.id,
            enterprise_t.c.name,
            enterprise_t.c.site_id,
            enterprise_t.c.resumed_on,
            checked.label("checks"),
        ).where(
            enterprise_t.c.status == ResumptionStatus.RESUMED.value,
            enterprise_t.c.resumed_on.is_not(None),
        )
    ).all()
    out = []
    for r in rows:
        if r.site_id not in anchor:
            continue
        day = (
            r.resumed_on
            if isinstance(r.resumed_on, date)
            else date.fromisoformat(str(r.resumed_on))
        )
        out.append(ResumedFact(r.id, r.name, r.site_id, anchor[r.site_id], day, bool(r.checks)))
    return out


def run_supervision(
    conn: Connection,
    now: datetime,
    timezone: str,
    raise_finding: Callable[[Finding], Any],
) -> tuple[list[int], list[int]]:
    """One pass: (alert ids opened, alert ids resolved)."""
    anchor = anchors(conn)
    holding = rectification_overdue(load_open_findings(conn, anchor, now), now)
    holding += enterprise_unchecked(load_resumed(conn, anchor), now, timezone)
    opened = []
    for finding in holding:
        raised = raise_finding(finding)
        if raised is not None and raised.created:
            opened.append(raised.alert_id)
    keys = {f.dedup_key for f in holding}
    resolved: list[int] = []
    outcome = {
        AlertType.RECTIFICATION_OVERDUE: "rectified",
        AlertType.ENTERPRISE_UNCHECKED: "checked",
    }
    for alert in store.open_alerts_of(conn, [t.value for t in outcome]):
        if alert.open_key not in keys:
            resolved += store.resolve_keys(
                conn, [alert.open_key], now, outcome[AlertType(alert.type)]
            )
    return opened, resolved
