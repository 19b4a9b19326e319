"""The supervision figures: enterprise resumption, same-day checks, pass rates, findings.

`figures` is pure over plain rows; `load_figures` reads them. The daily report and the
overview page show the same numbers as `GET /api/v1/supervision/metrics`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from services.core.models.supervision import (
    ChecklistTemplate,
    Enterprise,
    Finding,
    FindingStatus,
    Inspection,
    ResumptionStatus,
)
from services.core.supervision_rules import is_overdue


@dataclass(frozen=True, slots=True)
class InspectionRow:
    id: int
    template_code: str
    site_id: str
    enterprise_id: int | None
    inspected_at: datetime
    passed: bool
    corrected: bool  # a signed correction replaces it


def rate(passed: int, total: int) -> float | None:
    return round(passed / total, 6) if total else None


def _rates(rows: Iterable[InspectionRow], key: str) -> list[dict[str, Any]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        c = counts[getattr(r, key)]
        c[0] += 1
        c[1] += r.passed
    return [
        {key: k, "inspections": n, "passed": p, "pass_rate": rate(p, n)}
        for k, (n, p) in sorted(counts.items())
    ]


def figures(
    inspections: Sequence[InspectionRow],
    enterprises: Sequence[Enterprise],
    findings: Sequence[Finding],
    first: date,
    last: date,
    now: datetime,
    timezone: str,
) -> dict[str, Any]:
    """Figures of the local days [first, last]: `inspections` are the signed ones whose
    local day falls in them (corrected ones are left out of the rates)."""
    tz = ZoneInfo(timezone)
    counted = [r for r in inspections if not r.corrected]
    checked_days: dict[int, set[date]] = defaultdict(set)
    for r in counted:
        if r.enterprise_id is not None:
            checked_days[r.enterprise_id].add(r.inspected_at.astimezone(tz).date())
    resumed = [
        e
        for e in enterprises
        if e.status == ResumptionStatus.RESUMED and e.resumed_on and first <= e.resumed_on <= last
    ]
    same_day = [e for e in resumed if e.id is not None and e.resumed_on in checked_days[e.id]]
    enterprise_checks = [r for r in counted if r.enterprise_id is not None]
    statuses: dict[str, int] = defaultdict(int)
    overdue = 0
    for f in findings:
        statuses[f.status] += 1
        overdue += is_overdue(f.status, f.deadline, now)
    return {
        "from_day": first,
        "to_day": last,
        "timezone": timezone,
        "enterprises": {
            "total": len(enterprises),
            "resumed_total": sum(e.status == ResumptionStatus.RESUMED for e in enterprises),
            "resumed": len(resumed),
            "checked_same_day": len(same_day),
            "unchecked": sorted(e.id for e in resumed if e not in same_day and e.id is not None),
            "checks": len(enterprise_checks),
            "passed": sum(r.passed for r in enterprise_checks),
            "pass_rate": rate(sum(r.passed for r in enterprise_checks), len(enterprise_checks)),
        },
        "inspections": {
            "signed": len(counted),
            "passed": sum(r.passed for r in counted),
            "pass_rate": rate(sum(r.passed for r in counted), len(counted)),
            "by_checklist": _rates(counted, "template_code"),
            "by_site": _rates(counted, "site_id"),
        },
        "findings": {
            "open": statuses[FindingStatus.OPEN],
            "overdue": overdue,
            "fixed_on_spot": statuses[FindingStatus.FIXED_ON_SPOT],
            "closed": statuses[FindingStatus.CLOSED],
        },
    }


def load_figures(
    session: Session,
    first: date,
    last: date,
    start: datetime,
    end: datetime,
    now: datetime,
    timezone: str,
) -> dict[str, Any]:
    """`figures` of the local days [first, last], whose bounds are [start, end)."""
    codes = {t.id: t.code for t in session.exec(select(ChecklistTemplate))}
    signed = list(
        session.exec(
            select(Inspection).where(
                col(Inspection.signed_at).is_not(None),
                Inspection.inspected_at >= start,
                Inspection.inspected_at < end,
            )
        )
    )
    corrected = set(
        session.exec(
            select(Inspection.corrects_id).where(
                col(Inspection.corrects_id).is_not(None), col(Inspection.signed_at).is_not(None)
            )
        )
    )
    rows = [
        InspectionRow(
            id=i.id or 0,
            template_code=codes[i.template_id],
            site_id=i.site_id,
            enterprise_id=i.enterprise_id,
            inspected_at=i.inspected_at,
            passed=bool(i.passed),
            corrected=i.id in corrected,
        )
        for i in signed
    ]
    enterprises = list(session.exec(select(Enterprise)))
    # findings of inspections up to the end of the range, in their current state
    findings = list(
        session.exec(
            select(Finding)
            .join(Inspection, col(Inspection.id) == col(Finding.inspection_id))
            .where(Inspection.inspected_at < end)
        )
    )
    return figures(rows, enterprises, findings, first, last, now, timezone)
