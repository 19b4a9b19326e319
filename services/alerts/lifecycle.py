"""What people do to alerts (through the API): acknowledge, resolve, silence, route.

Each function works in the caller's `Session` transaction (the caller commits) and
writes the alert history and the outbox rows of the change, so duty handhelds and
webhooks hear about it too. Errors, for the API to map:

- `AlertNotFound`, `SilenceNotFound` (LookupError) -> 404
- `InvalidTransition` (ValueError): acknowledging an alert that is not open, resolving
  one already resolved -> 409
- `InvalidSilence`, `InvalidRoute` (ValueError): a bad window, neither or both of
  site and checkpoint, an unknown severity or type, a bad secret -> 422

Transitions: open -> acknowledged -> resolved, and open -> resolved. Every guard is in
the UPDATE's WHERE clause, so two people acknowledging at once get one success and one
`InvalidTransition`.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlmodel import Session

from services.alerts import fever_cases, outbox, signing
from services.alerts.announce import ANNOUNCEMENTS
from services.alerts.robots import common as robots
from services.alerts.store import add_history, alert_t, resolve_open, silence_t
from services.core.db import utcnow
from services.core.models.alerts import (
    Alert,
    AlertEvent,
    AlertStatus,
    AlertType,
    Severity,
    Silence,
    SilenceCreate,
    WebhookRoute,
    WebhookRouteCreate,
)

MAX_SILENCE_DAYS = 31


class AlertNotFound(LookupError):
    pass


class SilenceNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    pass


class InvalidSilence(ValueError):
    pass


class InvalidRoute(ValueError):
    pass


def _status_of(session: Session, alert_id: int) -> str:
    status = (
        session.connection()
        .execute(select(alert_t.c.status).where(alert_t.c.id == alert_id))
        .scalar()
    )
    if status is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return str(status)


def acknowledge(
    session: Session,
    alert_id: int,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Alert:
    """Someone is on it: stops escalation."""
    now = now or utcnow()
    conn = session.connection()
    row = conn.execute(
        update(alert_t)
        .where(alert_t.c.id == alert_id, alert_t.c.status == AlertStatus.OPEN.value)
        .values(
            status=AlertStatus.ACKNOWLEDGED.value,
            acknowledged_at=now,
            acknowledged_by=actor,
            next_escalation_at=None,
        )
        .returning(alert_t.c.silenced)
    ).first()
    if row is None:
        status = _status_of(session, alert_id)
        raise InvalidTransition(f"alert {alert_id} is {status}; only an open alert is acknowledged")
    add_history(conn, alert_id, AlertEvent.ACKNOWLEDGED, "acknowledged", now, actor, note)
    if not row[0]:
        outbox.enqueue(conn, alert_id, AlertEvent.ACKNOWLEDGED, now)
    return _load(session, alert_id)


def resolve(
    session: Session,
    alert_id: int,
    actor: str,
    outcome: str,
    note: str | None = None,
    now: datetime | None = None,
    decided_by: str | None = None,
) -> Alert:
    """Close an alert with what was done (e.g. `sent_to_fever_clinic`, `false_alarm`).
    A fever alert is a case: its outcome must be a disposition from the fixed list,
    recorded with the staff member who decided (`decided_by`, else the actor)."""
    outcome = outcome.strip()
    if not outcome or len(outcome) > 64:
        raise InvalidTransition("an outcome of 1-64 characters is required")
    if note is not None and len(note) > 1000:
        raise InvalidTransition("a note is at most 1000 characters")
    conn = session.connection()
    alert_type = conn.execute(select(alert_t.c.type).where(alert_t.c.id == alert_id)).scalar()
    fever = alert_type == AlertType.FEVER.value
    if fever and outcome not in fever_cases.DISPOSITIONS:
        raise InvalidTransition(
            "a fever is resolved with a disposition: " + ", ".join(sorted(fever_cases.DISPOSITIONS))
        )
    moment = now or utcnow()
    resolved = resolve_open(conn, alert_t.c.id == alert_id, moment, actor, outcome, note)
    if not resolved:
        status = _status_of(session, alert_id)
        raise InvalidTransition(f"alert {alert_id} is already {status}")
    if fever:
        fever_cases.decide(conn, alert_id, outcome, decided_by or actor, moment)
    return _load(session, alert_id)


def _load(session: Session, alert_id: int) -> Alert:
    session.expire_all()
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return alert


def create_silence(
    session: Session, data: SilenceCreate, actor: str, now: datetime | None = None
) -> Silence:
    """Silence a checkpoint or a whole site for a window: alerts there are still recorded
    (marked `silenced`) but not delivered and not escalated."""
    now = now or utcnow()
    if (data.site_id is None) == (data.checkpoint_id is None):
        raise InvalidSilence("give exactly one of site_id and checkpoint_id")
    if data.ends_at <= data.starts_at:
        raise InvalidSilence("ends_at must be after starts_at")
    if data.ends_at <= now:
        raise InvalidSilence("the window is already over")
    if (data.ends_at - data.starts_at).days > MAX_SILENCE_DAYS:
        raise InvalidSilence(f"a silence lasts at most {MAX_SILENCE_DAYS} days")
    if not data.reason.strip():
        raise InvalidSilence("say why (reason)")
    silence = Silence.model_validate(data, update={"created_by": actor, "created_at": now})
    session.add(silence)
    session.flush()
    return silence


def lift_silence(
    session: Session, silence_id: int, actor: str, now: datetime | None = None
) -> Silence:
    now = now or utcnow()
    conn = session.connection()
    result = conn.execute(
        update(silence_t)
        .where(silence_t.c.id == silence_id, silence_t.c.lifted_at.is_(None))
        .values(lifted_at=now, lifted_by=actor)
    )
    session.expire_all()
    silence = session.get(Silence, silence_id)
    if silence is None:
        raise SilenceNotFound(f"no silence {silence_id}")
    if result.rowcount == 0:
        raise InvalidSilence(f"silence {silence_id} was already lifted")
    return silence


def validate_route(data: WebhookRouteCreate) -> None:
    try:
        robots.validate(data.kind, data.url, data.secret, data.language, data.mentions)
    except robots.InvalidRobotRoute as exc:
        raise InvalidRoute(str(exc)) from None
    try:
        parts = urlsplit(data.url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket: the client's error, not a 500
        raise InvalidRoute("url must be an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRoute("url must be an http(s) URL")
    if data.min_severity not in set(Severity):
        raise InvalidRoute(f"min_severity must be one of {', '.join(Severity)}")
    unknown = set(data.types or ()) - set(AlertType) - ANNOUNCEMENTS  # + the daily report
    if unknown:
        raise InvalidRoute(f"unknown alert types: {', '.join(sorted(unknown))}")
    if data.secret is not None and data.kind == robots.STANDARD:
        try:
            signing.secret_key(data.secret)
        except signing.InvalidSecret as exc:
            raise InvalidRoute(str(exc)) from None


def create_route(session: Session, data: WebhookRouteCreate) -> WebhookRoute:
    """A new webhook route; its secret is generated unless given. Return the secret to
    the admin once: WebhookRoutePublic leaves it out."""
    validate_route(data)
    generated = signing.new_secret() if data.kind == robots.STANDARD else ""
    route = WebhookRoute.model_validate(data, update={"secret": data.secret or generated})
    session.add(route)
    session.flush()
    return route
