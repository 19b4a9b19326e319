"""Who am I: the caller's key, so a client (the dashboard) shows what the role allows."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.api.deps import CurrentKey
from services.api.errors import problem_responses
from services.core.enums import ROLE_NAMES

router = APIRouter(tags=["admin"])


class WhoAmI(BaseModel):
    key_id: int | None = Field(description="The API key's id")
    name: str = Field(examples=["north-gate handheld"])
    role: str = Field(description=ROLE_NAMES, examples=["duty"])
    checkpoints: list[str] | None = Field(
        description="The checkpoints a duty key may act on; null for the other roles",
        examples=[["cp-001", "cp-002"]],
    )


@router.get("/whoami", response_model=WhoAmI, responses=problem_responses(401))
def whoami(actor: CurrentKey) -> WhoAmI:
    return WhoAmI(
        key_id=actor.key_id,
        name=actor.name,
        role=actor.role,
        checkpoints=sorted(actor.scope) if actor.scope is not None else None,
    )
