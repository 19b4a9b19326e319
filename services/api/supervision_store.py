"""Inspections in the database: targets, the system's verdicts, marks, signing, findings.

The routes call these; the rules themselves are pure (services/core/supervision_rules).
The system's verdict of a sensor-judged item comes from the same coverage series and
figures as `GET /metrics/coverage` for the target's site and the period since the last
signed inspection of the target (or the look-back interval when there is none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from services.api import coverage as cov
from services.api.coverage_queries import aligned_window, coverage_series
from services.api.errors import ApiProblem, invalid_field
from services.api.routes.coverage import resolve_scope
from services.core.models import Site
from services.core.models.supervision import (
    ChecklistItem,
    ChecklistTemplate,
    Enterprise,
    Finding,
    FindingStatus,
    Inspection,
    InspectionAttachment,
    InspectionMark,
    InspectionMarkPublic,
    InspectionPublic,
    Mark,
    MarkIn,
    SupervisionVisit,
    TargetKind,
)
from services.core.supervision_rules import (
    ItemInfo,
    Verdict,
    closes,
    deadline_problem,
    disagrees,
    finding_status,
    mark_problems,
    sensor_verdict,
)
from services.core.supervision_templates import active_template, template_items

SITE_KINDS = {"residential": TargetKind.RESIDENTIAL, "industrial": TargetKind.INDUSTRIAL}


@dataclass(frozen=True, slots=True)
class Target:
    site: Site
    enterprise: Enterprise | None

    @property
    def kind(self) -> str | None:
        if self.enterprise is not None:
            return TargetKind.ENTERPRISE
        return SITE_KINDS.get(self.site.kind)


def resolve_target(session: Session, site_id: str | None, enterprise_id: int | None) -> Target:
    if enterprise_id is not None:
        enterprise = session.get(Enterprise, enterprise_id)
        if enterprise is None:
            raise invalid_field("body.enterprise_id", f"no enterprise {enterprise_id}")
        if site_id is not None and site_id != enterprise.site_id:
            raise invalid_field("body.site_id", "is not the enterprise's site")
        site = session.get(Site, enterprise.site_id)
        assert site is not None  # foreign key
        return Target(site, enterprise)
    if site_id is None:
        raise invalid_field("body.site_id", "name a site or an enterprise")
    site = session.get(Site, site_id)
    if site is None:
        raise invalid_field("body.site_id", f"no site {site_id!r}")
    return Target(site, None)


def choose_template(session: Session, target: Target, template_id: int | None) -> ChecklistTemplate:
    if template_id is None:
        template = active_template(session, target.kind) if target.kind else None
        if template is None:
            raise invalid_field(
                "body.template_id", f"no active checklist for {target.kind or target.site.kind}"
            )
        return template
    template = session.get(ChecklistTemplate, template_id)
    if template is None:
        raise invalid_field("body.template_id", f"no checklist template {template_id}")
    if (template.target_kind == TargetKind.ENTERPRISE) != (target.enterprise is not None):
        raise invalid_field(
            "body.template_id", f"a {template.target_kind} checklist does not fit this target"
        )
    return template


def minor_items(session: Session, template_id: int) -> list[ChecklistItem]:
    return [i for i in template_items(session, template_id) if i.parent_code is not None]


# --- the system's own verdict ---------------------------------------------------------
def last_signed_before(
    session: Session, target: Target, at: datetime, exclude: int | None
) -> datetime | None:
    query = select(Inspection.inspected_at).where(
        col(Inspection.signed_at).is_not(None), Inspection.inspected_at < at
    )
    if target.enterprise is not None:
        query = query.where(Inspection.enterprise_id == target.enterprise.id)
    else:
        query = query.where(
            Inspection.site_id == target.site.id, col(Inspection.enterprise_id).is_(None)
        )
    if exclude is not None:
        query = query.where(Inspection.id != exclude)
    return session.exec(query.order_by(col(Inspection.inspected_at).desc())).first()


def verdict_period(
    session: Session, target: Target, at: datetime, lookback_days: int, exclude: int | None = None
) -> tuple[datetime, datetime]:
    """[start, end) the verdict covers, aligned to whole hours as the coverage API does."""
    start = last_signed_before(session, target, at, exclude) or at - timedelta(days=lookback_days)
    return aligned_window(start, at)


def site_figures(
    session: Session, site_id: str, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    """The `total` of GET /metrics/coverage?site_id=...&from=start&to=end."""
    scope = resolve_scope(session, site_id, None)
    series = coverage_series(session.connection(), scope, start, end, now)
    return cov.figures_of(cov.add_totals(cov.hour_totals(series)))


def item_verdicts(
    items: Sequence[ChecklistItem], figures: dict[str, Any] | None, pass_ratio: float
) -> dict[str, Verdict]:
    return {
        i.code: sensor_verdict(i.sensor_metric, figures or {}, pass_ratio)
        for i in items
        if i.sensor_metric is not None
    }


# --- marks and signing ----------------------------------------------------------------
def check_marks(
    marks: Sequence[MarkIn], items: Sequence[ChecklistItem], at: datetime, signing: bool
) -> None:
    infos = [ItemInfo(i.code, i.sensor_metric) for i in items]
    problems = mark_problems(marks, infos, signing=signing)
    problems += [p for m in marks if (p := deadline_problem(m, at)) is not None]
    if problems:
        raise ApiProblem(422, "; ".join(problems), "invalid-marks")


def write_marks(
    session: Session,
    inspection: Inspection,
    marks: Sequence[MarkIn],
    items: Sequence[ChecklistItem],
    verdicts: dict[str, Verdict],
) -> None:
    assert inspection.id is not None
    for old in session.exec(
        select(InspectionMark).where(InspectionMark.inspection_id == inspection.id)
    ):
        session.delete(old)
    session.flush()
    by_code = {i.code: i for i in items}
    for m in marks:
        item = by_code[m.item_code]
        assert item.id is not None
        verdict = verdicts.get(m.item_code, Verdict(None, None))
        session.add(
            InspectionMark(
                inspection_id=inspection.id,
                item_id=item.id,
                item_code=m.item_code,
                mark=str(m.mark),
                reason=(m.reason or "").strip() or None,
                system_verdict=str(verdict.verdict) if verdict.verdict else None,
                system_value=verdict.value,
                disagreement=disagrees(m.mark, verdict.verdict),
                fixed_on_spot=m.fixed_on_spot,
                deadline=m.deadline,
            )
        )


def open_findings_of(session: Session, inspection: Inspection, template_code: str) -> list[Finding]:
    query = select(Finding).where(
        Finding.status == FindingStatus.OPEN, Finding.template_code == template_code
    )
    if inspection.enterprise_id is not None:
        query = query.where(Finding.enterprise_id == inspection.enterprise_id)
    else:
        query = query.where(
            Finding.site_id == inspection.site_id, col(Finding.enterprise_id).is_(None)
        )
    return list(session.exec(query))


def sign(
    session: Session,
    inspection: Inspection,
    marks: Sequence[MarkIn],
    signer_name: str,
    signature: InspectionAttachment,
    now: datetime,
) -> list[Finding]:
    """Seal the inspection: findings for its ×, closure of earlier open findings its √
    re-check, the planned visit it fulfils. The caller has checked the marks."""
    assert inspection.id is not None
    template = session.get(ChecklistTemplate, inspection.template_id)
    assert template is not None
    earlier = open_findings_of(session, inspection, template.code)
    closed = closes({f.item_code for f in earlier}, marks)
    for finding in earlier:
        superseded = (
            inspection.corrects_id is not None and finding.inspection_id == inspection.corrects_id
        )
        if finding.item_code in closed or superseded:
            finding.status = FindingStatus.CLOSED
            finding.closed_at = now
            finding.closed_by_inspection_id = inspection.id
            session.add(finding)
    created = []
    for m in marks:
        status = finding_status(m)
        if status is None:
            continue
        finding = Finding(
            inspection_id=inspection.id,
            item_code=m.item_code,
            template_code=template.code,
            site_id=inspection.site_id,
            enterprise_id=inspection.enterprise_id,
            reason=(m.reason or "").strip(),
            status=status,
            deadline=m.deadline,
            closed_at=now if status == FindingStatus.FIXED_ON_SPOT else None,
        )
        session.add(finding)
        created.append(finding)
    session.add(signature)
    inspection.signer_name = signer_name
    inspection.signed_at = now
    inspection.passed = all(m.mark == Mark.PASS for m in marks)
    session.add(inspection)
    fulfil_visit(session, inspection)
    return created


def fulfil_visit(session: Session, inspection: Inspection) -> None:
    """The earliest open planned visit of this target (by any team) is now done."""
    query = select(SupervisionVisit).where(col(SupervisionVisit.inspection_id).is_(None))
    if inspection.enterprise_id is not None:
        query = query.where(SupervisionVisit.enterprise_id == inspection.enterprise_id)
    else:
        query = query.where(
            SupervisionVisit.site_id == inspection.site_id,
            col(SupervisionVisit.enterprise_id).is_(None),
        )
    visit = session.exec(query.order_by(col(SupervisionVisit.planned_at))).first()
    if visit is not None:
        visit.inspection_id = inspection.id
        session.add(visit)


# --- what the API returns -------------------------------------------------------------
def to_public(session: Session, inspection: Inspection) -> InspectionPublic:
    assert inspection.id is not None
    marks = session.exec(
        select(InspectionMark)
        .where(InspectionMark.inspection_id == inspection.id)
        .order_by(col(InspectionMark.id))
    )
    photos = session.exec(
        select(InspectionAttachment.id).where(
            InspectionAttachment.inspection_id == inspection.id,
            InspectionAttachment.kind == "photo",
        )
    )
    corrected_by = session.exec(
        select(Inspection.id).where(Inspection.corrects_id == inspection.id)
    )
    return InspectionPublic(
        **inspection.model_dump(exclude={"created_at", "created_by"}),
        signed=inspection.signed_at is not None,
        marks=[InspectionMarkPublic.model_validate(m, from_attributes=True) for m in marks],
        photo_ids=[p for p in photos if p is not None],
        corrected_by=[c for c in corrected_by if c is not None],
    )
