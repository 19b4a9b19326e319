"""`GET /api/v1/reports/daily`: the daily report (日报) of a local day, as JSON, XLSX or
a printable page; `GET /api/v1/reports/daily/generated`: the reports the scheduler made
and announced (docs/reports.md). Officers and admins only: the report lists alerts."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from services.api.auth import Actor
from services.api.daily_report import build_daily_report
from services.api.deps import EngineDep, SessionDep, SettingsDep, require_roles
from services.api.errors import invalid_field, problem_responses
from services.api.privacy import audit_bulk_read
from services.api.report_html import render_html
from services.api.report_xlsx import XLSX_MEDIA_TYPE, xlsx_bytes
from services.core.db import utcnow
from services.core.enums import Role
from services.core.report_model import FutureDay, check_day, local_date
from services.core.tables import generated_report_t

router = APIRouter(prefix="/reports", tags=["reports"])
ReportReaderKey = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER))]
EARLIEST = date(2000, 1, 1)


class GeneratedReportPublic(BaseModel):
    id: int
    kind: str
    day: date
    timezone: str
    generated_at: datetime
    announced: int


@router.get(
    "/daily",
    summary="The daily report of a local day: JSON, XLSX or a printable page",
    responses={
        **problem_responses(401, 403, 422),
        200: {
            "content": {
                "application/json": {},
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                "text/html": {"schema": {"type": "string"}},
            }
        },
    },
)
def daily_report(
    request: Request,
    engine: EngineDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ReportReaderKey,
    day: Annotated[
        date | None,
        Query(
            alias="date",
            description="The local day (YYYY-MM-DD) of the community's time zone; "
            "default today. A day after today is refused (422).",
        ),
    ] = None,
    format: Literal["json", "xlsx", "html"] = "json",
    lang: Literal["zh-CN", "en"] = "zh-CN",
) -> Response:
    """Figures as the data stands now: those of `GET /metrics/coverage` and
    `GET /alerts` for the day's window, per community and per site. Each request is
    recorded in the audit log (the report names staff members)."""
    now = utcnow()
    if day is None:
        day = local_date(now, settings.timezone)
    if day < EARLIEST:
        raise invalid_field("query.date", f"must be {EARLIEST.isoformat()} or later")
    try:
        check_day(day, now, settings.timezone)
    except FutureDay as exc:
        raise invalid_field("query.date", str(exc)) from None
    report = build_daily_report(session, day, settings.timezone, now)
    # it names staff (hours served, who decided a fever case): a read that leaves a record
    audit_bulk_read(engine, actor, "reports.daily", {"date": day.isoformat(), "format": format})
    name = f"daily-report-{day.isoformat()}"
    if format == "xlsx":
        return Response(
            xlsx_bytes(report, lang),
            media_type=XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    if format == "html":
        stylesheet = str(request.base_url) + "css/report.css"
        return Response(render_html(report, stylesheet, lang), media_type="text/html")
    return Response(_json(report.to_json()), media_type="application/json")


@router.get(
    "/daily/generated",
    response_model=list[GeneratedReportPublic],
    summary="Daily reports the scheduler generated and announced, newest first",
    responses=problem_responses(401, 403, 422),
)
def generated_reports(
    session: SessionDep,
    actor: ReportReaderKey,
    limit: Annotated[int, Query(ge=1, le=400)] = 31,
) -> list[GeneratedReportPublic]:
    t = generated_report_t.c
    rows = session.connection().execute(
        select(t.id, t.kind, t.day, t.timezone, t.generated_at, t.announced)
        .order_by(t.day.desc())
        .limit(limit)
    )
    return [GeneratedReportPublic.model_validate(dict(row)) for row in rows.mappings()]


def _json(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
