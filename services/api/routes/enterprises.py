"""The enterprise registry and its resumption of work (复工), with CSV import.

An enterprise that resumes (on creation, by `POST .../resumption` or by import) gets a
same-day check planned for a supervision team.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, select

from services.api.auth import Actor
from services.api.deps import InspectorKey, SessionDep, SettingsDep, require_roles
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import IntId, commit_audited, get_or_404
from services.api.routes.registry_import import read_limited
from services.api.schemas import ImportRowError
from services.api.supervision_scheduling import schedule_resumption_checks
from services.core.db import utcnow
from services.core.enums import Role
from services.core.models import Site
from services.core.models.supervision import (
    Enterprise,
    EnterpriseCreate,
    EnterprisePublic,
    ResumptionStatus,
)
from services.core.supervision_rules import credit_code_problem, normalize_credit_code

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
ManagerKey = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER))]
COLUMNS = (
    "name",
    "credit_code",
    "site_id",
    "address",
    "contact_name",
    "contact_phone",
    "resumed_on",
)
EXAMPLE = (
    "name,credit_code,site_id,resumed_on\n"
    "松坪山精密制造有限公司,91440300MA5G0KUF48,park-1,2020-02-24\n"
)


class EnterpriseUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, max_length=300)
    contact_name: str | None = Field(default=None, max_length=100)
    contact_phone: str | None = Field(default=None, max_length=32)


class Resumption(BaseModel):
    resumed_on: date = Field(description="The local day work resumed")


class EnterpriseImportReport(BaseModel):
    rows: int
    imported: int
    committed: bool
    errors: list[ImportRowError]


def checked(session: Session, body: EnterpriseCreate, field: str = "body") -> Enterprise:
    code = normalize_credit_code(body.credit_code)
    problem = credit_code_problem(code)
    if problem is not None:
        raise invalid_field(f"{field}.credit_code", problem)
    if session.get(Site, body.site_id) is None:
        raise invalid_field(f"{field}.site_id", f"no site {body.site_id!r}")
    row = Enterprise.model_validate({**body.model_dump(), "credit_code": code})
    if body.resumed_on is not None:
        row.status = ResumptionStatus.RESUMED
    return row


@router.get("/enterprises", response_model=list[EnterprisePublic], responses=ERRORS)
def list_enterprises(
    session: SessionDep,
    _actor: InspectorKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    status: ResumptionStatus | None = None,
) -> list[Enterprise]:
    query = select(Enterprise)
    if site_id is not None:
        query = query.where(Enterprise.site_id == site_id)
    if status is not None:
        query = query.where(Enterprise.status == status)
    return list(session.exec(query.order_by(col(Enterprise.id))))


@router.post("/enterprises", response_model=EnterprisePublic, status_code=201, responses=ERRORS)
def create_enterprise(
    body: EnterpriseCreate, session: SessionDep, settings: SettingsDep, actor: ManagerKey
) -> Enterprise:
    row = checked(session, body)
    if session.exec(select(Enterprise.id).where(Enterprise.credit_code == row.credit_code)).first():
        raise ApiProblem(409, f"an enterprise with credit code {row.credit_code} exists")
    session.add(row)
    session.flush()
    schedule_resumption_checks(session, [row], utcnow(), settings.timezone)
    commit_audited(
        session, actor, "enterprise.create", f"enterprise/{row.id}", {"name": row.name}, row
    )
    return row


@router.patch("/enterprises/{enterprise_id}", response_model=EnterprisePublic, responses=ERRORS)
def update_enterprise(
    enterprise_id: IntId, body: EnterpriseUpdate, session: SessionDep, actor: ManagerKey
) -> Enterprise:
    row = get_or_404(session, Enterprise, enterprise_id, "enterprise")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name == "name":
            raise invalid_field("body.name", "may not be null")
        setattr(row, name, value)
    session.add(row)
    commit_audited(session, actor, "enterprise.update", f"enterprise/{enterprise_id}", changes, row)
    return row


@router.post(
    "/enterprises/{enterprise_id}/resumption", response_model=EnterprisePublic, responses=ERRORS
)
def report_resumption(
    enterprise_id: IntId,
    body: Resumption,
    session: SessionDep,
    settings: SettingsDep,
    actor: ManagerKey,
) -> Enterprise:
    """The enterprise resumed work on `resumed_on`; its same-day check is planned."""
    row = get_or_404(session, Enterprise, enterprise_id, "enterprise")
    if row.status == ResumptionStatus.RESUMED:
        raise ApiProblem(409, f"enterprise {enterprise_id} resumed on {row.resumed_on}")
    row.status, row.resumed_on = ResumptionStatus.RESUMED, body.resumed_on
    session.add(row)
    schedule_resumption_checks(session, [row], utcnow(), settings.timezone)
    detail = {"resumed_on": body.resumed_on.isoformat()}
    commit_audited(session, actor, "enterprise.resume", f"enterprise/{enterprise_id}", detail, row)
    return row


def parse_rows(session: Session, text: str) -> tuple[int, list[Enterprise], list[ImportRowError]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("name", "credit_code", "site_id") if c not in header]
    if missing:
        raise invalid_field("body", "CSV header lacks " + ", ".join(missing))
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise invalid_field("body", "unknown CSV columns: " + ", ".join(unknown))
    reader.fieldnames = header
    rows: list[Enterprise] = []
    errors: list[ImportRowError] = []
    seen: set[str] = set()
    count = 0
    for record in reader:
        count += 1
        line = reader.line_num
        values = {k: (v or "").strip() or None for k, v in record.items() if k is not None}
        try:
            row = checked(session, EnterpriseCreate.model_validate(values), "row")
        except ValidationError as exc:
            first = exc.errors()[0]
            column = str(first["loc"][0]) if first["loc"] else ""
            errors.append(ImportRowError(row=line, field=column, message=first["msg"]))
            continue
        except ApiProblem as exc:
            errors.append(ImportRowError(row=line, field=None, message=exc.detail))
            continue
        if row.credit_code in seen:
            errors.append(
                ImportRowError(row=line, field="credit_code", message="repeated in the file")
            )
            continue
        seen.add(row.credit_code)
        rows.append(row)
    return count, rows, errors


def merge(session: Session, row: Enterprise) -> Enterprise:
    """A new enterprise, or the one with the same credit code updated (a resumption
    date given for one not yet resumed resumes it)."""
    existing = session.exec(
        select(Enterprise).where(Enterprise.credit_code == row.credit_code)
    ).first()
    if existing is None:
        session.add(row)
        return row
    for name in ("name", "address", "site_id", "contact_name", "contact_phone"):
        value = getattr(row, name)
        if value is not None:
            setattr(existing, name, value)
    if row.resumed_on is not None and existing.status != ResumptionStatus.RESUMED:
        existing.status, existing.resumed_on = ResumptionStatus.RESUMED, row.resumed_on
    session.add(existing)
    return existing


@router.post(
    "/enterprises/import",
    response_model=EnterpriseImportReport,
    responses=problem_responses(401, 403, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "CSV with a header line: name,credit_code,site_id[,address,"
            "contact_name,contact_phone,resumed_on (YYYY-MM-DD)]",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
async def import_enterprises(
    request: Request, session: SessionDep, settings: SettingsDep, actor: ManagerKey
) -> EnterpriseImportReport:
    """All or nothing: any bad row (named by its CSV line) and nothing is written.
    Rows whose credit code exists update that enterprise."""
    content_type = request.headers.get("content-type", "text/csv").split(";")[0].strip()
    if content_type not in ("text/csv", "text/plain", "application/csv"):
        raise ApiProblem(415, f"send the CSV as text/csv, not {content_type}")
    body = await read_limited(request, settings.api_max_import_bytes)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(422, f"the CSV is not UTF-8 (byte {exc.start})") from None
    count, rows, errors = parse_rows(session, text)
    if errors:
        return EnterpriseImportReport(rows=count, imported=0, committed=False, errors=errors)
    merged = [merge(session, row) for row in rows]
    session.flush()
    schedule_resumption_checks(session, merged, utcnow(), settings.timezone)
    commit_audited(session, actor, "enterprise.import", "enterprises", {"rows": count})
    return EnterpriseImportReport(rows=count, imported=len(merged), committed=True, errors=[])
