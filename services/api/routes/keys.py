"""API keys (admin): list, create (the key is shown once), revoke."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import col, select

from services.api.auth import create_key
from services.api.deps import AdminKey, SessionDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import IntId, commit_audited, get_or_404
from services.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from services.core.db import utcnow
from services.core.enums import Role
from services.core.models import Checkpoint
from services.core.models.auth import ApiKey

router = APIRouter(prefix="/keys", tags=["admin"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get("", response_model=list[ApiKeyPublic], responses=ERRORS)
def list_keys(session: SessionDep, _actor: AdminKey) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))))


@router.post("", response_model=ApiKeyCreated, status_code=201, responses=ERRORS)
def create_api_key(body: ApiKeyCreate, session: SessionDep, actor: AdminKey) -> ApiKeyCreated:
    if body.role == Role.DUTY:
        if not body.checkpoints:
            raise invalid_field("body.checkpoints", "a duty key needs the checkpoints it covers")
        for cp in body.checkpoints:
            if session.get(Checkpoint, cp.strip()) is None:
                raise invalid_field("body.checkpoints", "names a checkpoint that does not exist")
    elif body.checkpoints:
        raise invalid_field("body.checkpoints", "only duty keys are limited to checkpoints")
    row, key = create_key(session, Role(body.role), body.name, body.checkpoints)
    commit_audited(
        session,
        actor,
        "api_key.create",
        f"api_key/{row.id}",
        {"role": body.role, "name": body.name, "checkpoints": row.checkpoint_ids},
        row,
    )
    return ApiKeyCreated.model_validate({**row.model_dump(), "key": key})


@router.post("/{key_id}/revoke", response_model=ApiKeyPublic, responses=ERRORS)
def revoke_key(key_id: IntId, session: SessionDep, actor: AdminKey) -> ApiKey:
    row: ApiKey = get_or_404(session, ApiKey, key_id, "API key")
    if row.revoked_at is not None:
        raise ApiProblem(409, f"API key {key_id} is already revoked")
    if row.id == actor.key_id:
        raise ApiProblem(409, "a key cannot revoke itself; use another admin key")
    row.revoked_at = utcnow()
    session.add(row)
    commit_audited(session, actor, "api_key.revoke", f"api_key/{key_id}", None, row)
    return row
