"""Findings (the × of signed inspections) and their rectification (整改).

A finding is fixed on the spot, or open until its deadline; a later signed inspection
of the same target that marks the item √ closes it. An open finding past its deadline
is overdue, and the alert service raises `rectification_overdue` for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import and_, not_
from sqlmodel import col, select

from services.api.deps import InspectorKey, SessionDep
from services.api.errors import problem_responses
from services.api.routes.common import MAX_INT, IntId, get_or_404
from services.core.db import utcnow
from services.core.models.supervision import Finding, FindingPublic, FindingStatus
from services.core.supervision_rules import is_overdue

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 422)


def public(finding: Finding) -> FindingPublic:
    return FindingPublic.model_validate(
        {
            **finding.model_dump(),
            "overdue": is_overdue(finding.status, finding.deadline, utcnow()),
        }
    )


@router.get("/findings", response_model=list[FindingPublic], responses=ERRORS)
def list_findings(
    session: SessionDep,
    _actor: InspectorKey,
    status: FindingStatus | None = None,
    overdue: bool | None = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    enterprise_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FindingPublic]:
    """Newest first; `overdue=true`: open findings past their deadline."""
    query = select(Finding)
    if status is not None:
        query = query.where(Finding.status == status)
    if site_id is not None:
        query = query.where(Finding.site_id == site_id)
    if enterprise_id is not None:
        query = query.where(Finding.enterprise_id == enterprise_id)
    if overdue is not None:
        now = utcnow()
        late = and_(col(Finding.status) == FindingStatus.OPEN, col(Finding.deadline) < now)
        query = query.where(late if overdue else not_(late))
    rows = session.exec(query.order_by(col(Finding.id).desc()).limit(limit))
    return [public(f) for f in rows]


@router.get("/findings/{finding_id}", response_model=FindingPublic, responses=ERRORS)
def get_finding(finding_id: IntId, session: SessionDep, _actor: InspectorKey) -> FindingPublic:
    return public(get_or_404(session, Finding, finding_id, "finding"))
