"""The audit log (admin): every write through the API and every tracing query."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement

from services.api.deps import AdminKey, SessionDep
from services.api.errors import problem_responses
from services.api.pagination import keyset_page
from services.api.params import CursorParam, FromParam, LimitParam, ToParam, check_window
from services.api.routes.common import MAX_INT
from services.api.schemas import AuditEntry, Page
from services.core.tables import audit_t

router = APIRouter(prefix="/audit", tags=["admin"])


@router.get("", response_model=Page[AuditEntry], responses=problem_responses(401, 403, 422))
def list_audit(
    session: SessionDep,
    _actor: AdminKey,
    action: Annotated[str | None, Query(max_length=64, examples=["tracing.query"])] = None,
    api_key_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    from_: FromParam = None,
    to: ToParam = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[AuditEntry]:
    check_window(from_, to)
    t = audit_t.c
    conditions: list[ColumnElement[bool]] = []
    if action is not None:
        conditions.append(t.action == action)
    if api_key_id is not None:
        conditions.append(t.api_key_id == api_key_id)
    if from_ is not None:
        conditions.append(t.at >= from_)
    if to is not None:
        conditions.append(t.at < to)
    rows, next_cursor = keyset_page(session.connection(), audit_t, conditions, cursor, limit, "at")
    return Page[AuditEntry](
        items=[AuditEntry.model_validate(r) for r in rows], next_cursor=next_cursor
    )
