"""Supervision inspections: draft, mark, sign (then immutable), correct; photos, signature.

Inspectors file inspections and see their own; officers and admins see all. A signed
inspection refuses every change with 409; a correction is a new inspection whose
`corrects_id` names the signed one.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.api.auth import Actor
from services.api.deps import InspectorKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import MAX_INT, IntId, commit_audited
from services.api.supervision_images import ImageRejected, check_png
from services.api.supervision_store import (
    Target,
    check_marks,
    choose_template,
    item_verdicts,
    minor_items,
    resolve_target,
    sign,
    site_figures,
    to_public,
    verdict_period,
    write_marks,
)
from services.core.db import utcnow
from services.core.enums import Role
from services.core.models.supervision import (
    Inspection,
    InspectionAttachment,
    InspectionCreate,
    InspectionKind,
    InspectionMark,
    InspectionPublic,
    InspectionUpdate,
    Mark,
    MarkIn,
    SupervisionTeam,
)
from services.core.settings import Settings
from services.core.supervision_rules import Verdict

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
PNG_ROUTE = {"content": {"image/png": {}}, "description": "The PNG"}


class SignBody(BaseModel):
    signer_name: str = Field(min_length=1, max_length=100, description="The responsible person")
    signature_png: str = Field(
        min_length=8,
        max_length=1_000_000,
        description="The signature drawn on screen: a PNG, base64 or a data: URL",
    )


class ItemVerdict(BaseModel):
    item_code: str
    sensor_metric: str
    verdict: str | None = Field(description="pass | fail | null (nothing measured)")
    value: float | None


class VerdictReport(BaseModel):
    site_id: str
    template_id: int
    period_start: datetime
    period_end: datetime
    items: list[ItemVerdict]


def may_see(actor: Actor, inspection: Inspection) -> bool:
    return actor.role != Role.INSPECTOR or inspection.created_by == actor.key_id


def get_visible(session: Session, actor: Actor, inspection_id: int) -> Inspection:
    inspection = session.get(Inspection, inspection_id)
    if inspection is None or not may_see(actor, inspection):
        raise ApiProblem(404, f"no inspection {inspection_id}")
    return inspection


def editable(session: Session, actor: Actor, inspection_id: int) -> Inspection:
    inspection = get_visible(session, actor, inspection_id)
    if inspection.signed_at is not None:
        raise ApiProblem(
            409,
            f"inspection {inspection_id} is signed and cannot change; file a correction "
            "(a new inspection with corrects_id)",
            "inspection-signed",
        )
    return inspection


def verdicts_for(
    session: Session,
    settings: Settings,
    target: Target,
    template_id: int,
    at: datetime,
    exclude: int | None,
) -> tuple[datetime, datetime, list[ItemVerdict]]:
    """The verdict period and the verdict of each sensor-judged minor item."""
    start, end = verdict_period(session, target, at, settings.supervision_lookback_days, exclude)
    sensed = [i for i in minor_items(session, template_id) if i.sensor_metric]
    figures = site_figures(session, target.site.id, start, end, utcnow()) if sensed else None
    verdicts = item_verdicts(sensed, figures, settings.supervision_pass_ratio)
    return (
        start,
        end,
        [
            ItemVerdict(
                item_code=i.code,
                sensor_metric=i.sensor_metric or "",
                verdict=verdicts[i.code].verdict,
                value=verdicts[i.code].value,
            )
            for i in sensed
        ],
    )


def mark_verdicts(
    session: Session, settings: Settings, inspection: Inspection, marks: list[MarkIn]
) -> None:
    """Check the marks and store them, each with the system's verdict for the period."""
    target = resolve_target(session, inspection.site_id, inspection.enterprise_id)
    items = minor_items(session, inspection.template_id)
    check_marks(marks, items, inspection.inspected_at, signing=False)
    start, _end, report = verdicts_for(
        session, settings, target, inspection.template_id, inspection.inspected_at, inspection.id
    )
    inspection.period_start = start
    verdicts = {v.item_code: Verdict(v.verdict, v.value) for v in report}
    write_marks(session, inspection, marks, items, verdicts)


# --- routes ---------------------------------------------------------------------------
@router.get("/verdicts", response_model=VerdictReport, responses=ERRORS)
def get_verdicts(
    session: SessionDep,
    settings: SettingsDep,
    _actor: InspectorKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    enterprise_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    template_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    at: datetime | None = None,
) -> VerdictReport:
    """The system's own verdict on the sensor-judged items, for the form: the period
    since the target's last signed inspection (or the look-back interval) up to `at`."""
    if at is not None and at.tzinfo is None:
        raise invalid_field("query.at", "needs a time zone")
    target = resolve_target(session, site_id, enterprise_id)
    template = choose_template(session, target, template_id)
    assert template.id is not None
    start, end, report = verdicts_for(session, settings, target, template.id, at or utcnow(), None)
    return VerdictReport(
        site_id=target.site.id,
        template_id=template.id,
        period_start=start,
        period_end=end,
        items=report,
    )


@router.get("/inspections", response_model=list[InspectionPublic], responses=ERRORS)
def list_inspections(
    session: SessionDep,
    actor: InspectorKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    enterprise_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    team_id: Annotated[str | None, Query(max_length=64)] = None,
    signed: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[InspectionPublic]:
    """Newest first. An inspector key sees the inspections it filed."""
    query = select(Inspection)
    if site_id is not None:
        query = query.where(Inspection.site_id == site_id)
    if enterprise_id is not None:
        query = query.where(Inspection.enterprise_id == enterprise_id)
    if team_id is not None:
        query = query.where(Inspection.team_id == team_id)
    if signed is not None:
        signed_at = col(Inspection.signed_at)
        query = query.where(signed_at.is_not(None) if signed else signed_at.is_(None))
    if actor.role == Role.INSPECTOR:
        query = query.where(Inspection.created_by == actor.key_id)
    rows = session.exec(
        query.order_by(col(Inspection.inspected_at).desc(), col(Inspection.id).desc()).limit(limit)
    )
    return [to_public(session, row) for row in rows]


@router.post("/inspections", response_model=InspectionPublic, status_code=201, responses=ERRORS)
def create_inspection(
    body: InspectionCreate, session: SessionDep, settings: SettingsDep, actor: InspectorKey
) -> InspectionPublic:
    """A draft with the marks so far; each sensor-judged mark carries the system's verdict."""
    if session.get(SupervisionTeam, body.team_id) is None:
        raise invalid_field("body.team_id", f"no supervision team {body.team_id!r}")
    at = body.inspected_at or utcnow()
    if at.tzinfo is None:
        raise invalid_field("body.inspected_at", "needs a time zone")
    kind = body.kind
    if body.corrects_id is not None:
        old = get_visible(session, actor, body.corrects_id)
        if old.signed_at is None:
            raise invalid_field("body.corrects_id", "a draft is edited, not corrected")
        body.site_id, body.enterprise_id = old.site_id, old.enterprise_id
        kind = InspectionKind.CORRECTION
    elif kind == InspectionKind.CORRECTION:
        raise invalid_field("body.corrects_id", "a correction names the inspection it corrects")
    target = resolve_target(session, body.site_id, body.enterprise_id)
    template = choose_template(session, target, body.template_id)
    if kind == InspectionKind.RESUMPTION and target.enterprise is None:
        raise invalid_field("body.enterprise_id", "a resumption check is of an enterprise")
    assert template.id is not None
    inspection = Inspection(
        kind=kind,
        team_id=body.team_id,
        template_id=template.id,
        site_id=target.site.id,
        enterprise_id=target.enterprise.id if target.enterprise else None,
        inspected_at=at,
        inspector=body.inspector,
        notes=body.notes,
        corrects_id=body.corrects_id,
        created_by=actor.key_id,
    )
    session.add(inspection)
    session.flush()
    mark_verdicts(session, settings, inspection, body.marks)
    commit_audited(
        session, actor, "inspection.create", f"inspection/{inspection.id}", None, inspection
    )
    return to_public(session, inspection)


@router.get("/inspections/{inspection_id}", response_model=InspectionPublic, responses=ERRORS)
def get_inspection(
    inspection_id: IntId, session: SessionDep, actor: InspectorKey
) -> InspectionPublic:
    return to_public(session, get_visible(session, actor, inspection_id))


@router.patch("/inspections/{inspection_id}", response_model=InspectionPublic, responses=ERRORS)
def update_inspection(
    inspection_id: IntId,
    body: InspectionUpdate,
    session: SessionDep,
    settings: SettingsDep,
    actor: InspectorKey,
) -> InspectionPublic:
    """Only a draft changes; a signed inspection answers 409."""
    inspection = editable(session, actor, inspection_id)
    if body.inspector is not None:
        inspection.inspector = body.inspector
    if "notes" in body.model_fields_set:
        inspection.notes = body.notes
    if body.marks is not None:
        mark_verdicts(session, settings, inspection, body.marks)
    session.add(inspection)
    commit_audited(
        session, actor, "inspection.update", f"inspection/{inspection_id}", None, inspection
    )
    return to_public(session, inspection)


def decode_png(text: str) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if head != "data:image/png;base64":
            raise invalid_field("body.signature_png", "only a PNG data URL (image/png;base64)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_field("body.signature_png", "is not base64") from None


def checked_attachment(
    data: bytes, kind: str, inspection_id: int, settings: Settings, field: str
) -> InspectionAttachment:
    try:
        png = check_png(data, settings.supervision_image_max_bytes)
    except ImageRejected as exc:
        raise invalid_field(field, str(exc)) from None
    return InspectionAttachment(
        inspection_id=inspection_id,
        kind=kind,
        width=png.width,
        height=png.height,
        size=png.size,
        sha256=png.sha256,
        data=data,
    )


@router.post("/inspections/{inspection_id}/sign", response_model=InspectionPublic, responses=ERRORS)
def sign_inspection(
    inspection_id: IntId,
    body: SignBody,
    session: SessionDep,
    settings: SettingsDep,
    actor: InspectorKey,
) -> InspectionPublic:
    """The responsible person signs: every item must be marked, each × with its reason.
    Findings open for the ×; earlier open findings of the target this marks √ close."""
    inspection = editable(session, actor, inspection_id)
    signature = checked_attachment(
        decode_png(body.signature_png), "signature", inspection_id, settings, "body.signature_png"
    )
    items = minor_items(session, inspection.template_id)
    rows = session.exec(select(InspectionMark).where(InspectionMark.inspection_id == inspection_id))
    marks = [
        MarkIn(
            item_code=m.item_code,
            mark=Mark(m.mark),
            reason=m.reason,
            fixed_on_spot=m.fixed_on_spot,
            deadline=m.deadline,
        )
        for m in rows
    ]
    check_marks(marks, items, inspection.inspected_at, signing=True)
    sign(session, inspection, marks, body.signer_name.strip(), signature, utcnow())
    commit_audited(
        session,
        actor,
        "inspection.sign",
        f"inspection/{inspection_id}",
        {"signer": body.signer_name},
        inspection,
    )
    return to_public(session, inspection)


@router.get(
    "/inspections/{inspection_id}/signature",
    response_class=Response,
    responses={**ERRORS, 200: PNG_ROUTE},
)
def get_signature(inspection_id: IntId, session: SessionDep, actor: InspectorKey) -> Response:
    get_visible(session, actor, inspection_id)
    row = session.exec(
        select(InspectionAttachment).where(
            InspectionAttachment.inspection_id == inspection_id,
            InspectionAttachment.kind == "signature",
        )
    ).first()
    if row is None:
        raise ApiProblem(404, f"inspection {inspection_id} is not signed")
    return Response(
        row.data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.post(
    "/inspections/{inspection_id}/photos",
    status_code=201,
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def add_photo(
    inspection_id: IntId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: InspectorKey,
) -> dict[str, int]:
    """A photo of the draft (a PNG as the request body)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "image/png":
        raise ApiProblem(415, f"send the photo as image/png, not {content_type or 'nothing'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.supervision_image_max_bytes:
            raise ApiProblem(
                413, f"the photo is larger than {settings.supervision_image_max_bytes} bytes"
            )
    editable(session, actor, inspection_id)
    row = checked_attachment(bytes(body), "photo", inspection_id, settings, "body")
    session.add(row)
    commit_audited(session, actor, "inspection.photo", f"inspection/{inspection_id}", None, row)
    assert row.id is not None
    return {"id": row.id}


@router.get(
    "/inspections/{inspection_id}/photos/{photo_id}",
    response_class=Response,
    responses={**ERRORS, 200: PNG_ROUTE},
)
def get_photo(
    inspection_id: IntId, photo_id: IntId, session: SessionDep, actor: InspectorKey
) -> Response:
    get_visible(session, actor, inspection_id)
    row = session.get(InspectionAttachment, photo_id)
    if row is None or row.inspection_id != inspection_id or row.kind != "photo":
        raise ApiProblem(404, f"no photo {photo_id} of inspection {inspection_id}")
    return Response(
        row.data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )
