"""Supervision alerts, decided by pure functions over plain facts.

- `rectification_overdue`: a finding still open after its rectification deadline. It
  resolves when a re-inspection closes the finding.
- `enterprise_unchecked`: an enterprise that resumed work was not checked on site by
  the end of its (local) day of resumption. It resolves once a signed inspection of the
  enterprise exists, however late.

Alerts belong to a checkpoint (the alert table's key), so each of these is filed under
the first active checkpoint of the target's site (`anchor`); its subject names the
finding or the enterprise, which keeps one open alert per finding or enterprise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.alerts.event_rules import AlertType, Finding


@dataclass(frozen=True, slots=True)
class OpenFinding:
    id: int
    site_id: str
    anchor: str  # checkpoint the alert is filed under
    item_code: str
    reason: str
    deadline: datetime | None
    enterprise_name: str | None = None


@dataclass(frozen=True, slots=True)
class ResumedFact:
    id: int
    name: str
    site_id: str
    anchor: str
    resumed_on: date
    checked: bool  # a signed inspection of the enterprise exists since resumption


def finding_subject(finding_id: int) -> str:
    return f"finding:{finding_id}"


def enterprise_subject(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


def day_end(day: date, timezone: str) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone))


def rectification_overdue(findings: Iterable[OpenFinding], now: datetime) -> list[Finding]:
    out = []
    for f in findings:
        if f.deadline is None or f.deadline >= now:
            continue
        hours = int((now - f.deadline).total_seconds() // 3600)
        where = f.enterprise_name or f.site_id
        out.append(
            Finding(
                AlertType.RECTIFICATION_OVERDUE,
                f.anchor,
                f.site_id,
                finding_subject(f.id),
                f"{where}: item {f.item_code} not rectified, {hours} h past the deadline",
                {
                    "finding_id": f.id,
                    "item_code": f.item_code,
                    "reason": f.reason[:200],
                    "deadline": f.deadline.isoformat(),
                },
            )
        )
    return out


def enterprise_unchecked(
    enterprises: Iterable[ResumedFact], now: datetime, timezone: str
) -> list[Finding]:
    out = []
    for e in enterprises:
        if e.checked or now < day_end(e.resumed_on, timezone):
            continue
        out.append(
            Finding(
                AlertType.ENTERPRISE_UNCHECKED,
                e.anchor,
                e.site_id,
                enterprise_subject(e.id),
                f"{e.name}: resumed work on {e.resumed_on} and was not checked that day",
                {"enterprise_id": e.id, "resumed_on": e.resumed_on.isoformat()},
            )
        )
    return out
