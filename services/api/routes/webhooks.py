"""Webhook routes (admin): where alerts are sent, and how their deliveries went.

A route's URL and secret are credentials (a robot's URL carries its token): responses
and the audit log show them masked (`robots.common.mask_url`), and only the generated
`whsec_` secret of a standard route is returned, once, at creation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import delete, update
from sqlmodel import col, select

from services.alerts import lifecycle
from services.alerts.egress import EgressPolicy, RefusedTarget
from services.alerts.robots import common as robots
from services.alerts.robots.messages import Context
from services.alerts.robots.probe import send_test
from services.api.deps import AdminKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import IntId, commit_audited, get_or_404
from services.core.db import utcnow
from services.core.models import Checkpoint, Site
from services.core.models.alerts import (
    Outbox,
    Severity,
    WebhookRoute,
    WebhookRouteCreate,
    WebhookRoutePublic,
)
from services.core.settings import Settings
from services.core.tables import outbox_t, robot_send_t, route_t

router = APIRouter(prefix="/webhooks", tags=["admin"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


class WebhookRouteView(WebhookRoutePublic):
    has_secret: bool = Field(description="A signing secret is set (never shown again)")


class WebhookRouteCreated(WebhookRouteView):
    secret: str = Field(
        description="standard: the whsec_... secret to verify signatures with, shown once; "
        "robots: the last characters of the secret you gave, or ''"
    )


class WebhookTestResult(BaseModel):
    ok: bool
    status_code: int | None = Field(description="HTTP status of the receiver's answer")
    retryable: bool = Field(description="Whether the outbox would retry this failure")
    robot_code: int | None = Field(description="The robot's errcode / code (robots only)")
    error: str | None
    answer: str | None = Field(description="The receiver's answer body, shortened")


class WebhookRouteUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = Field(default=None, max_length=1000)
    min_severity: Severity | None = None
    types: list[str] | None = None
    escalation: bool | None = None
    enabled: bool | None = None
    language: Literal["zh-CN", "en"] | None = None
    mentions: list[str] | None = None
    secret: str | None = Field(default=None, max_length=200, description="Write-only")


class DeliveryPublic(BaseModel):
    id: int
    alert_id: int | None = Field(description="null for an announcement (a daily report)")
    event: str
    message_id: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def _view(route: WebhookRoute) -> WebhookRouteView:
    data = route.model_dump()
    data["url"] = robots.mask_url(route.url)
    data["mentions"] = [robots.mask_mention(m) for m in route.mentions or []] or None
    return WebhookRouteView.model_validate({**data, "has_secret": bool(route.secret)})


def _audit_detail(values: dict[str, Any]) -> dict[str, Any]:
    detail = {k: v for k, v in values.items() if k != "secret"}
    if "url" in detail and detail["url"] is not None:
        detail["url"] = robots.mask_url(str(detail["url"]))
    if detail.get("mentions"):
        detail["mentions"] = [robots.mask_mention(str(m)) for m in detail["mentions"]]
    if "secret" in values:
        detail["secret_changed"] = True
    return detail


def _check_target(settings: Settings, url: str) -> None:
    """Scheme and host; a literal address must be public unless allowed. Names are
    resolved and checked again before every request (services/alerts/egress.py)."""
    try:
        EgressPolicy.parse(settings.webhook_allow_hosts).check_url(url)
    except RefusedTarget as exc:
        raise invalid_field("body.url", str(exc)) from None


def _cancel_pending(session: SessionDep, route_id: int, why: str = "disabled") -> int:
    """A disabled or deleted route's queued deliveries and retries are cancelled, not
    sent later."""
    result = session.connection().execute(
        update(outbox_t)
        .where(outbox_t.c.route_id == route_id, outbox_t.c.state == "pending")
        .values(state="cancelled", last_error=f"cancelled: the route was {why}")
    )
    return int(result.rowcount or 0)


def _check_refs(session: SessionDep, site_id: str | None, checkpoint_id: str | None) -> None:
    if site_id is not None and session.get(Site, site_id) is None:
        raise invalid_field("body.site_id", "names no existing site")
    if checkpoint_id is not None and session.get(Checkpoint, checkpoint_id) is None:
        raise invalid_field("body.checkpoint_id", "names no existing checkpoint")


@router.get("", response_model=list[WebhookRouteView], responses=ERRORS)
def list_routes(session: SessionDep, _actor: AdminKey) -> list[WebhookRouteView]:
    """Routes with their URLs masked (a robot's URL is its credential)."""
    return [_view(r) for r in session.exec(select(WebhookRoute).order_by(col(WebhookRoute.id)))]


@router.post("", response_model=WebhookRouteCreated, status_code=201, responses=ERRORS)
def create_route(
    body: WebhookRouteCreate, session: SessionDep, actor: AdminKey, settings: SettingsDep
) -> WebhookRouteCreated:
    """Alerts matching site / checkpoint / minimum severity / types are POSTed to `url`:
    `standard` routes signed per Standard Webhooks with the route's secret (returned
    here, once); `wecom`, `dingtalk`, `feishu` routes as that group robot's message,
    signed with the robot's secret when it has one (docs/alerts.md)."""
    _check_refs(session, body.site_id, body.checkpoint_id)
    _check_target(settings, body.url)
    try:
        route = lifecycle.create_route(session, body)
    except lifecycle.InvalidRoute as exc:
        raise ApiProblem(422, str(exc), "validation-error") from None
    commit_audited(
        session,
        actor,
        "webhook_route.create",
        f"webhook_route/{route.id}",
        _audit_detail(body.model_dump()),
        route,
    )
    shown = route.secret if route.kind == robots.STANDARD else robots.mask_secret(route.secret)
    return WebhookRouteCreated.model_validate({**_view(route).model_dump(), "secret": shown})


@router.patch("/{route_id}", response_model=WebhookRouteView, responses=ERRORS)
def update_route(
    route_id: IntId,
    body: WebhookRouteUpdate,
    session: SessionDep,
    actor: AdminKey,
    settings: SettingsDep,
) -> WebhookRouteView:
    """Changes are applied as given; `enabled: false` also cancels the route's pending
    deliveries (retries included): they are not sent when it is enabled again."""
    route: WebhookRoute = get_or_404(session, WebhookRoute, route_id, "webhook route")
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "url", "min_severity", "escalation", "enabled", "language", "secret"):
        if name in changes and changes[name] is None:
            raise invalid_field(f"body.{name}", "may not be null")
    merged = WebhookRouteCreate.model_validate(
        {**route.model_dump(), **changes, "secret": changes.get("secret")}
    )
    try:
        lifecycle.validate_route(merged)
    except lifecycle.InvalidRoute as exc:
        raise ApiProblem(422, str(exc), "validation-error") from None
    if "url" in changes:
        _check_target(settings, merged.url)
    for name, value in changes.items():
        setattr(route, name, value)
    session.add(route)
    detail = _audit_detail(changes)
    if changes.get("enabled") is False:
        detail["deliveries_cancelled"] = _cancel_pending(session, route_id)
    commit_audited(
        session, actor, "webhook_route.update", f"webhook_route/{route_id}", detail, route
    )
    return _view(route)


@router.post("/{route_id}/test", response_model=WebhookTestResult, responses=ERRORS)
def test_route(
    route_id: IntId, session: SessionDep, actor: AdminKey, settings: SettingsDep
) -> WebhookTestResult:
    """Send a test message to the route's receiver now and return its answer (for a
    robot: its own code, e.g. DingTalk 310000 when the signature or keyword is wrong).
    A robot's test counts against its rate limit like any message."""
    route: WebhookRoute = get_or_404(session, WebhookRoute, route_id, "webhook route")
    ctx = Context(settings.dashboard_url, settings.timezone)
    egress = EgressPolicy.parse(settings.webhook_allow_hosts)
    result = send_test(session.connection(), route.model_dump(), ctx, utcnow(), egress)
    commit_audited(
        session,
        actor,
        "webhook_route.test",
        f"webhook_route/{route_id}",
        {"ok": result.ok, "status_code": result.status_code, "robot_code": result.receiver_code},
    )
    return WebhookTestResult(
        ok=result.ok,
        status_code=result.status_code,
        retryable=result.retryable,
        robot_code=result.receiver_code,
        error=result.error,
        answer=result.answer,
    )


@router.get("/{route_id}/deliveries", response_model=list[DeliveryPublic], responses=ERRORS)
def list_deliveries(
    route_id: IntId,
    session: SessionDep,
    _actor: AdminKey,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed|cancelled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Outbox]:
    get_or_404(session, WebhookRoute, route_id, "webhook route")
    query = select(Outbox).where(Outbox.route_id == route_id)
    if state is not None:
        query = query.where(Outbox.state == state)
    return list(session.exec(query.order_by(col(Outbox.id).desc()).limit(limit)))


@router.delete("/{route_id}", status_code=204, responses=ERRORS)
def delete_route(route_id: IntId, session: SessionDep, actor: AdminKey) -> None:
    """The route is deleted and its pending deliveries (retries included) cancelled in
    the same transaction. Its past deliveries stay in the outbox, unlinked from the
    route; its robot send log goes with it. The audit record keeps the counts."""
    route: WebhookRoute = get_or_404(session, WebhookRoute, route_id, "webhook route")
    conn = session.connection()
    detail: dict[str, Any] = {
        "name": route.name,
        "kind": route.kind,
        "url": robots.mask_url(route.url),
        "deliveries_cancelled": _cancel_pending(session, route_id, "deleted"),
    }
    detail["deliveries_unlinked"] = int(
        conn.execute(
            update(outbox_t).where(outbox_t.c.route_id == route_id).values(route_id=None)
        ).rowcount
        or 0
    )
    conn.execute(delete(robot_send_t).where(robot_send_t.c.route_id == route_id))
    conn.execute(delete(route_t).where(route_t.c.id == route_id))
    session.expunge(route)
    commit_audited(session, actor, "webhook_route.delete", f"webhook_route/{route_id}", detail)
