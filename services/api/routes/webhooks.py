"""Webhook routes (admin): where alerts are sent, and how their deliveries went."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from services.alerts import lifecycle
from services.api.deps import AdminKey, SessionDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import IntId, commit_audited, get_or_404
from services.core.models import Checkpoint, Site
from services.core.models.alerts import (
    Outbox,
    Severity,
    WebhookRoute,
    WebhookRouteCreate,
    WebhookRoutePublic,
)

router = APIRouter(prefix="/webhooks", tags=["admin"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


class WebhookRouteCreated(WebhookRoutePublic):
    secret: str = Field(description="whsec_...: verify signatures with it; shown once")


class WebhookRouteUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = Field(default=None, max_length=1000)
    min_severity: Severity | None = None
    types: list[str] | None = None
    escalation: bool | None = None
    enabled: bool | None = None


class DeliveryPublic(BaseModel):
    id: int
    alert_id: int
    event: str
    message_id: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def _check_refs(session: SessionDep, site_id: str | None, checkpoint_id: str | None) -> None:
    if site_id is not None and session.get(Site, site_id) is None:
        raise invalid_field("body.site_id", f"no site {site_id!r}")
    if checkpoint_id is not None and session.get(Checkpoint, checkpoint_id) is None:
        raise invalid_field("body.checkpoint_id", f"no checkpoint {checkpoint_id!r}")


@router.get("", response_model=list[WebhookRoutePublic], responses=ERRORS)
def list_routes(session: SessionDep, _actor: AdminKey) -> list[WebhookRoute]:
    return list(session.exec(select(WebhookRoute).order_by(col(WebhookRoute.id))))


@router.post("", response_model=WebhookRouteCreated, status_code=201, responses=ERRORS)
def create_route(
    body: WebhookRouteCreate, session: SessionDep, actor: AdminKey
) -> WebhookRouteCreated:
    """Alerts matching site / checkpoint / minimum severity / types are POSTed to `url`,
    signed per Standard Webhooks with the route's secret (returned here, once)."""
    _check_refs(session, body.site_id, body.checkpoint_id)
    try:
        route = lifecycle.create_route(session, body)
    except lifecycle.InvalidRoute as exc:
        raise ApiProblem(422, str(exc), "validation-error") from None
    commit_audited(
        session,
        actor,
        "webhook_route.create",
        f"webhook_route/{route.id}",
        body.model_dump(exclude={"secret"}),
        route,
    )
    return WebhookRouteCreated.model_validate(route.model_dump())


@router.patch("/{route_id}", response_model=WebhookRoutePublic, responses=ERRORS)
def update_route(
    route_id: IntId, body: WebhookRouteUpdate, session: SessionDep, actor: AdminKey
) -> WebhookRoute:
    route: WebhookRoute = get_or_404(session, WebhookRoute, route_id, "webhook route")
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "url", "min_severity", "escalation", "enabled"):
        if name in changes and changes[name] is None:
            raise invalid_field(f"body.{name}", "may not be null")
    merged = WebhookRouteCreate.model_validate({**route.model_dump(), **changes, "secret": None})
    try:
        lifecycle.validate_route(merged)
    except lifecycle.InvalidRoute as exc:
        raise ApiProblem(422, str(exc), "validation-error") from None
    for name, value in changes.items():
        setattr(route, name, value)
    session.add(route)
    commit_audited(
        session, actor, "webhook_route.update", f"webhook_route/{route_id}", changes, route
    )
    return route


@router.get("/{route_id}/deliveries", response_model=list[DeliveryPublic], responses=ERRORS)
def list_deliveries(
    route_id: IntId,
    session: SessionDep,
    _actor: AdminKey,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Outbox]:
    get_or_404(session, WebhookRoute, route_id, "webhook route")
    query = select(Outbox).where(Outbox.route_id == route_id)
    if state is not None:
        query = query.where(Outbox.state == state)
    return list(session.exec(query.order_by(col(Outbox.id).desc()).limit(limit)))
