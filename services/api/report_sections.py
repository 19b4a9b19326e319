"""The daily report's supervision and roster parts: signed inspections and their
findings, enterprise resumption and its same-day checks (issue 16), hours served per
person and role and the fever cases' dispositions (issue 17). Each builder reads one
day's window and returns `Extras`: tables, figures per site, and dispositions.

Counting rules (docs/reports.md): an inspection counts once signed, on the day it was
made; a finding is opened with its inspection and is an open rectification at the
day's end unless fixed on the spot or closed before then; an enterprise resumed on the
day is checked the same day when a signed resumption inspection of it falls in that
local day; hours served are the counted duty intervals within the day; staffing by
requirement is the roster API's (`GET /roster/coverage`) minutes met / required.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, or_, select

from services.api.coverage_roster import roster_coverage
from services.core.models.supervision import ChecklistTemplate, Enterprise, Finding, Inspection
from services.core.report_model import Section
from services.core.roster_report import fever_dispositions, hours_by_role, hours_served
from services.core.tables import alert_t, checkpoint_t, fever_case_t, table_of

inspection_t = table_of(Inspection)
finding_t = table_of(Finding)
enterprise_t = table_of(Enterprise)
template_t = table_of(ChecklistTemplate)


@dataclass(frozen=True, slots=True)
class Extras:
    sections: tuple[Section, ...] = ()
    per_site: dict[str, dict[str, float]] = field(default_factory=dict)
    dispositions: dict[int, str] = field(default_factory=dict)  # fever alert id -> decided


Figures = dict[str, dict[str, float]]  # site id -> figure -> value
Window = tuple[datetime, datetime, date, str]  # UTC start, end, the local day, time zone
ExtrasBuilder = Callable[[Connection, Window], Extras]


def supervision_extras(conn: Connection, window: Window) -> Extras:
    start, end, _day, _tz = window
    per_site: Figures = defaultdict(lambda: defaultdict(float))
    t = inspection_t.c
    signed = and_(t.signed_at.is_not(None), t.inspected_at >= start, t.inspected_at < end)
    rows = conn.execute(
        select(
            t.id,
            t.kind,
            t.team_id,
            t.site_id,
            t.enterprise_id,
            t.inspected_at,
            t.passed,
            t.signer_name,
            template_t.c.code,
            template_t.c.version,
        )
        .join(template_t, template_t.c.id == t.template_id)
        .where(signed)
        .order_by(t.inspected_at, t.id)
    ).all()
    for row in rows:
        per_site[row.site_id]["inspections"] += 1
        per_site[row.site_id]["inspections_passed"] += 1 if row.passed else 0
    inspections = Section(
        "inspections",
        ("id", "kind", "team_id", "site_id", "enterprise_id", "template", "inspected_at",
         "passed", "signer_name"),
        tuple(
            (str(r.id), r.kind, r.team_id, r.site_id,
             None if r.enterprise_id is None else str(r.enterprise_id),
             f"{r.code} v{r.version}", r.inspected_at, bool(r.passed), r.signer_name)
            for r in rows
        ),
        frozenset({"id", "team_id", "site_id", "enterprise_id", "template"}),
    )  # fmt: skip
    f = finding_t.c
    made = select(t.id).where(t.inspected_at < end).scalar_subquery()
    # closed when the re-inspection that closed it was made (the row's closed_at is when
    # it was signed); a finding closed by hand has only closed_at
    closer = inspection_t.alias("closer")
    closed = func.coalesce(closer.c.inspected_at, f.closed_at).label("closed")
    findings = conn.execute(
        select(f.id, f.inspection_id, f.item_code, f.template_code, f.site_id, f.status,
               f.deadline, closed, f.reason, t.inspected_at)
        .join(inspection_t, t.id == f.inspection_id)
        .outerjoin(closer, closer.c.id == f.closed_by_inspection_id)
        .where(f.inspection_id.in_(made))
        .where(or_(t.inspected_at >= start, closed.is_(None), closed >= end))
        .order_by(f.id)
    ).all()  # fmt: skip
    listed = []
    for r in findings:
        opened_today = r.inspected_at >= start
        still_open = r.status != "fixed_on_spot" and (r.closed is None or r.closed >= end)
        per_site[r.site_id]["findings"] += 1 if opened_today else 0
        if still_open:
            per_site[r.site_id]["open_rectifications"] += 1
            overdue = r.deadline is not None and r.deadline < end
            per_site[r.site_id]["overdue_rectifications"] += 1 if overdue else 0
        if opened_today or still_open:
            listed.append(
                (str(r.id), str(r.inspection_id), r.template_code, r.item_code, r.site_id,
                 r.status, r.deadline, r.reason)
            )  # fmt: skip
    finding_section = Section(
        "findings",
        ("id", "inspection_id", "template", "item_code", "site_id", "status", "deadline",
         "reason"),
        tuple(listed),
        frozenset({"id", "inspection_id", "template", "item_code", "site_id"}),
    )  # fmt: skip
    return Extras((inspections, finding_section, _enterprises(conn, window, per_site)), per_site)


def _enterprises(conn: Connection, window: Window, per_site: Figures) -> Section:
    start, end, day, _tz = window
    e, t = enterprise_t.c, inspection_t.c
    resumed = conn.execute(
        select(e.id, e.name, e.credit_code, e.site_id).where(e.resumed_on == day).order_by(e.id)
    ).all()
    checks: dict[int, bool] = {}
    for enterprise_id, passed in conn.execute(
        select(t.enterprise_id, t.passed)
        .where(t.kind == "resumption", t.signed_at.is_not(None))
        .where(t.inspected_at >= start, t.inspected_at < end)
        .where(t.enterprise_id.in_([r.id for r in resumed]))
        .order_by(t.inspected_at, t.id)
    ):
        checks[enterprise_id] = bool(passed)  # the latest check of the day counts
    rows = []
    for r in resumed:
        per_site[r.site_id]["enterprises_resumed"] += 1
        per_site[r.site_id]["checked_same_day"] += 1 if r.id in checks else 0
        rows.append((str(r.id), r.name, r.credit_code, r.site_id, r.id in checks, checks.get(r.id)))
    return Section(
        "enterprises",
        ("id", "name", "credit_code", "site_id", "checked_same_day", "passed"),
        tuple(rows),
        frozenset({"id", "name", "credit_code", "site_id"}),
    )


def roster_extras(conn: Connection, window: Window) -> Extras:
    start, end, _day, timezone = window
    served = hours_served(conn, start, end)
    site_of = dict(conn.execute(select(checkpoint_t.c.id, checkpoint_t.c.site_id)).all())
    per_site: Figures = defaultdict(lambda: defaultdict(float))
    for row in served:
        per_site[site_of.get(row.checkpoint_id, "")]["hours_served"] += round(row.minutes / 60, 2)
    for cp in roster_coverage(conn, start, end, ZoneInfo(timezone), None).checkpoints:
        site = per_site[site_of.get(cp.checkpoint_id, "")]
        site["required_minutes"] += cp.required_minutes
        site["met_minutes"] += cp.met_minutes
    people = Section(
        "hours",
        ("staff_id", "name", "duty_role", "checkpoint_id", "hours"),
        tuple(
            (r.staff_id, r.name, r.duty_role, r.checkpoint_id, round(r.minutes / 60, 2))
            for r in served
        ),
        frozenset({"staff_id", "name", "checkpoint_id"}),
    )
    roles = Section(
        "hours_by_role",
        ("duty_role", "hours"),
        tuple((role, round(hours, 2)) for role, hours in sorted(hours_by_role(served).items())),
        frozenset({"duty_role"}),
    )
    cases = fever_dispositions(conn, start, end)
    fevers = Section(
        "fever_dispositions",
        ("id", "checkpoint_id", "fever_at", "temp_c", "recheck_temp_c", "disposition",
         "decided_by", "decided_at", "minutes_to_disposition"),
        tuple(
            (str(c.alert_id), c.checkpoint_id, c.fever_at, c.temp_c, c.recheck_temp_c,
             c.disposition, c.decided_by, c.decided_at, c.minutes_to_disposition)
            for c in cases
        ),
        frozenset({"id", "checkpoint_id", "decided_by"}),
    )  # fmt: skip
    # the fever lines are alerts opened in the day (their reading may be older)
    f, a = fever_case_t.c, alert_t.c
    decided = dict(
        conn.execute(
            select(f.alert_id, f.disposition)
            .join(alert_t, a.id == f.alert_id)
            .where(a.opened_at >= start, a.opened_at < end, f.disposition.is_not(None))
        ).all()
    )
    return Extras((people, roles, fevers), per_site, decided)


REPORT_EXTRAS: Sequence[ExtrasBuilder] = (supervision_extras, roster_extras)
