"""Alerts, routes and a settable clock for the robot tests (real database)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlmodel import Session

from services.alerts import lifecycle
from services.alerts.event_rules import Finding
from services.alerts.robots import make_notifiers
from services.alerts.robots.dispatch import RobotDispatcher, RobotLimits
from services.alerts.robots.messages import Context
from services.alerts.store import escalate_due, raise_alert
from services.core.models.alerts import AlertType, WebhookRouteCreate
from services.core.models.robots import RobotSend
from services.core.tables import table_of
from tests.support.webhooks import LOOPBACK_EGRESS

DASHBOARD = "http://127.0.0.1:8000"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)  # 16:00 in Shanghai


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def wall(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Robots:
    """A dispatcher on the test's clock, and the notifiers it uses."""

    engine: Engine
    clock: Clock
    limits: RobotLimits = field(default_factory=RobotLimits)

    def __post_init__(self) -> None:
        self.notifiers = make_notifiers(
            timeout_s=5.0, wall_clock=self.clock.wall, egress=LOOPBACK_EGRESS
        )
        self.dispatcher = RobotDispatcher(
            self.engine, Context(DASHBOARD), self.clock, self.notifiers, self.limits
        )

    def deliver(self) -> int:
        return self.dispatcher.deliver_due()

    def close(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()


def add_route(engine: Engine, kind: str, url: str, **values: Any) -> int:
    with Session(engine) as session:
        route = lifecycle.create_route(
            session, WebhookRouteCreate(name=f"{kind} group", url=url, kind=kind, **values)
        )
        session.commit()
        assert route.id is not None
        return route.id


def checkpoints(engine: Engine, n: int) -> Iterator[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, site_id FROM checkpoint ORDER BY id")).all()
    yield from ((str(r[0]), str(r[1])) for r in rows[:n])


def raise_fever(
    engine: Engine, clock: Clock, cp: str, site: str, subject: str, temp_c: float = 38.6
) -> int:
    finding = Finding(
        AlertType.FEVER,
        cp,
        site,
        subject,
        f"Fever {temp_c:.1f} °C at {cp}",
        {"temp_c": temp_c, "id_masked": "4403**********123X", "person": subject[2:]},
    )
    with engine.begin() as conn:
        raised = raise_alert(conn, finding, clock(), timedelta(minutes=2))
    assert raised is not None and raised.created
    return raised.alert_id


def escalate(engine: Engine, clock: Clock) -> list[int]:
    with engine.begin() as conn:
        return escalate_due(conn, clock(), lambda _severity: timedelta(minutes=2))


def acknowledge(engine: Engine, clock: Clock, alert_id: int, actor: str) -> None:
    with Session(engine) as session:
        lifecycle.acknowledge(session, alert_id, actor, now=clock())
        session.commit()


def resolve(engine: Engine, clock: Clock, alert_id: int, outcome: str, note: str) -> None:
    with Session(engine) as session:
        lifecycle.resolve(session, alert_id, "officer-1", outcome, note, now=clock())
        session.commit()


def outbox_states(engine: Engine, route_id: int) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [
            (str(r[0]), int(r[1]))
            for r in conn.execute(
                text("SELECT state, attempts FROM outbox WHERE route_id = :r ORDER BY id"),
                {"r": route_id},
            )
        ]


def sends(engine: Engine, route_id: int) -> list[dict[str, Any]]:
    send_t = table_of(RobotSend)
    with engine.connect() as conn:
        rows = conn.execute(
            select(send_t).where(send_t.c.route_id == route_id).order_by(send_t.c.id)
        )
        return [dict(row._mapping) for row in rows]
