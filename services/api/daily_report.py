"""The daily report's queries: the report model (services/core/report_model.py) for one
local day, from the same functions the API's own routes use.

Coverage: `resolve_scope` and `coverage_series` of `GET /metrics/coverage` over the
hour-aligned window of the local day, summed by `figures_of`: the figures equal the
API's `total` for `from`/`to` = the day's start and end. Alerts: the rows
`GET /alerts?from=...&to=...` lists (opening time in the window), of the reported
types. Supervision and roster parts come from services/api/report_sections.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlmodel import Session

from services.api import coverage as cov
from services.api.coverage_queries import aligned_window, coverage_series
from services.api.report_sections import REPORT_EXTRAS, Extras, ExtrasBuilder
from services.api.routes.coverage import resolve_scope
from services.core.report_model import (
    REPORTED_TYPES,
    AlertLine,
    DailyReport,
    day_window,
    scope_report,
)
from services.core.tables import alert_t, site_t


def coverage_figures(
    session: Session, site_id: str | None, start: datetime, end: datetime, now: datetime
) -> tuple[int, dict[str, Any]]:
    """The coverage API's checkpoint count and `total` figures for a site (None: the
    community) over the hour-aligned window [start, end)."""
    scope = resolve_scope(session, site_id, None)
    series = coverage_series(session.connection(), scope, start, end, now, "rollup")
    return len(scope.checkpoints), cov.figures_of(cov.add_totals(cov.hour_totals(series)))


def alert_lines(conn: Connection, start: datetime, end: datetime) -> list[AlertLine]:
    """Alerts of the reported types opened in [start, end), oldest first."""
    t = alert_t.c
    query = (
        select(
            t.id,
            t.type,
            t.severity,
            t.site_id,
            t.checkpoint_id,
            t.opened_at,
            t.status,
            t.outcome,
            t.resolved_at,
            t.resolved_by,
            t.summary,
        )
        .where(t.opened_at >= start, t.opened_at < end, t.type.in_(REPORTED_TYPES))
        .order_by(t.opened_at, t.id)
    )
    return [AlertLine(**row) for row in conn.execute(query).mappings()]


def build_daily_report(
    session: Session,
    day: date,
    timezone: str,
    now: datetime,
    extras: Sequence[ExtrasBuilder] = REPORT_EXTRAS,
) -> DailyReport:
    """The report of the local `day` as the data stands at `now`."""
    start, end = aligned_window(*day_window(day, timezone))
    conn = session.connection()
    parts: list[Extras] = [build(conn, (start, end, day, timezone)) for build in extras]
    decided = {k: v for part in parts for k, v in part.dispositions.items()}
    lines = [
        replace(line, disposition=decided[line.id]) if line.id in decided else line
        for line in alert_lines(conn, start, end)
    ]
    per_site: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    everywhere: dict[str, float] = defaultdict(float)
    for part in parts:
        for site_id, figures_of_site in part.per_site.items():
            for name, value in figures_of_site.items():
                per_site[site_id][name] += value
                everywhere[name] += value
    checkpoints, figures = coverage_figures(session, None, start, end, now)
    community = scope_report(None, "community", "社区", checkpoints, figures, lines, everywhere)
    sites = []
    site_rows = conn.execute(
        select(site_t.c.id, site_t.c.name, site_t.c.name_zh).order_by(site_t.c.id)
    ).all()
    for site_id, name, name_zh in site_rows:
        count, site_figures = coverage_figures(session, site_id, start, end, now)
        sites.append(
            scope_report(site_id, name, name_zh, count, site_figures, lines, per_site.get(site_id))
        )
    return DailyReport(
        day=day,
        timezone=timezone,
        start=start,
        end=end,
        generated_at=now,
        community=community,
        sites=tuple(sites),
        alerts=tuple(lines),
        sections=tuple(section for part in parts for section in part.sections),
    )
