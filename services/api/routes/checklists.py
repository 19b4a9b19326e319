"""Checklist templates: every version is kept; admins add a new one (it becomes active)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import Session, col, select

from services.api.deps import AdminKey, CurrentKey, SessionDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import IntId, commit_audited, get_or_404
from services.core.models.supervision import (
    ChecklistItemPublic,
    ChecklistTemplate,
    ChecklistTemplateCreate,
    ChecklistTemplatePublic,
)
from services.core.supervision_templates import create_template_version, template_items

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


def public(session: Session, template: ChecklistTemplate) -> ChecklistTemplatePublic:
    assert template.id is not None
    items = [
        ChecklistItemPublic.model_validate(i, from_attributes=True)
        for i in template_items(session, template.id)
    ]
    return ChecklistTemplatePublic.model_validate({**template.model_dump(), "items": items})


@router.get("/checklists", response_model=list[ChecklistTemplatePublic], responses=ERRORS)
def list_checklists(
    session: SessionDep, _actor: CurrentKey, all_versions: bool = False
) -> list[ChecklistTemplatePublic]:
    """The active version of each checklist (every version with `all_versions`)."""
    query = select(ChecklistTemplate)
    if not all_versions:
        query = query.where(col(ChecklistTemplate.active))
    rows = session.exec(query.order_by(col(ChecklistTemplate.code), col(ChecklistTemplate.version)))
    return [public(session, t) for t in rows]


@router.get("/checklists/{template_id}", response_model=ChecklistTemplatePublic, responses=ERRORS)
def get_checklist(
    template_id: IntId, session: SessionDep, _actor: CurrentKey
) -> ChecklistTemplatePublic:
    return public(session, get_or_404(session, ChecklistTemplate, template_id, "checklist"))


@router.post(
    "/checklists", response_model=ChecklistTemplatePublic, status_code=201, responses=ERRORS
)
def create_checklist(
    body: ChecklistTemplateCreate, session: SessionDep, actor: AdminKey
) -> ChecklistTemplatePublic:
    """A new version of checklist `code`; inspections on older versions keep theirs."""
    existing = session.exec(
        select(ChecklistTemplate.target_kind).where(ChecklistTemplate.code == body.code)
    ).first()
    if existing is not None and existing != body.target_kind:
        raise invalid_field("body.target_kind", f"checklist {body.code!r} is for {existing}")
    try:
        template = create_template_version(session, body)
    except ValueError as exc:
        raise ApiProblem(422, str(exc), "invalid-checklist") from None
    commit_audited(
        session,
        actor,
        "checklist.create",
        f"checklist/{template.id}",
        {"code": body.code, "version": template.version},
        template,
    )
    return public(session, template)
