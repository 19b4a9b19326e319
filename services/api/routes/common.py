"""Small helpers shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from sqlmodel import Session

from services.api.auth import Actor, write_audit
from services.api.errors import ApiProblem, invalid_field
from services.core.models import Checkpoint, Site

MAX_INT = 2**31 - 1
IntId = Annotated[int, Path(ge=1, le=MAX_INT, description="numeric id")]
SlugId = Annotated[str, Path(max_length=64, description="id")]


def commit_audited(
    session: Session,
    actor: Actor,
    action: str,
    resource: str,
    detail: dict[str, Any] | None = None,
    refresh: Any = None,
) -> None:
    """Audit and commit in one transaction: no write without its audit record."""
    write_audit(session, actor, action, resource, detail)
    session.commit()
    if refresh is not None:
        session.refresh(refresh)


def get_or_404(session: Session, model: Any, key: Any, what: str) -> Any:
    row = session.get(model, key)
    if row is None:
        raise ApiProblem(404, f"no {what} with this id")
    return row


def must_exist(session: Session, model: Any, key: Any, field: str) -> None:
    """A reference in a request body that points nowhere is the client's error (422)."""
    if key is not None and session.get(model, key) is None:
        raise invalid_field(field, f"names no existing {model.__tablename__}")


def known_filters(session: Session, site_id: str | None, checkpoint_id: str | None) -> None:
    """A filter naming a site or checkpoint that does not exist is a 422 (docs/api.md,
    Errors), not an empty answer that looks like "nothing happened there"."""
    must_exist(session, Site, site_id, "query.site_id")
    must_exist(session, Checkpoint, checkpoint_id, "query.checkpoint_id")
