"""Delivering robot routes from the outbox, within each robot's rate limit.

WeCom and DingTalk robots take 20 messages a minute (DingTalk then refuses for 10
minutes); Feishu 100. Every request to a robot is a `robot_send` row, and a route may
make at most `per_minute` of them in any `window_s`. Of these, `singles_per_minute` carry
one alert event each; when more events are waiting than that allows, all of them go in
one summary message (which says how many it covers; a single waiting event is sent as
itself), at most one every `summary_spacing_s`. Nothing is dropped: every outbox row
is delivered alone or inside a summary, or waits for the window to free a slot.

A route's rows go out in id order: while its oldest pending row waits for a retry, the
newer ones wait too. A robot's rate-limit code is retried after its documented pause;
any other refusal fails the rows at once (`DeliveryResult.retryable`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from services.alerts.delivery import RetryPolicy, mark_delivered
from services.alerts.notifiers import DeliveryResult, Notifier, OutboundMessage
from services.alerts.robots import make_notifiers, render
from services.alerts.robots.common import ROBOT_KINDS, RobotRoute
from services.alerts.robots.messages import Context, Event, card, summary_card
from services.core.tables import attempt_t, outbox_t, robot_send_t, route_t

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RobotLimits:
    per_minute: int = 20
    singles_per_minute: int = 15
    summary_spacing_s: float = 12.0
    window_s: float = 60.0
    max_fold: int = 500  # outbox rows one summary stands for at most


@dataclass(frozen=True, slots=True)
class Pending:
    outbox_id: int
    checkpoint_id: str
    message_id: str
    event: str
    payload: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime


class RobotDispatcher:
    def __init__(
        self,
        engine: Engine,
        ctx: Context,
        clock: Callable[[], datetime],
        notifiers: Mapping[str, Notifier] | None = None,
        limits: RobotLimits | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.ctx = ctx
        self.clock = clock
        self.notifiers: Mapping[str, Notifier] = notifiers or make_notifiers()
        self.limits = limits or RobotLimits()
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()

    # --- reading ---------------------------------------------------------------------
    def pending(self) -> list[tuple[RobotRoute, list[Pending]]]:
        """Each robot route with pending rows whose oldest is due, and those rows."""
        query = (
            select(
                outbox_t.c.id,
                outbox_t.c.checkpoint_id,
                outbox_t.c.message_id,
                outbox_t.c.event,
                outbox_t.c.payload,
                outbox_t.c.attempts,
                outbox_t.c.created_at,
                outbox_t.c.next_attempt_at,
                route_t.c.id.label("route_id"),
                route_t.c.name,
                route_t.c.kind,
                route_t.c.url,
                route_t.c.secret,
                route_t.c.language,
                route_t.c.mentions,
            )
            .join(route_t, route_t.c.id == outbox_t.c.route_id)
            .where(outbox_t.c.state == "pending", route_t.c.kind.in_(ROBOT_KINDS))
            .order_by(outbox_t.c.id)
            .limit(self.limits.max_fold * 4)  # a backlog beyond this waits a pass
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        now = self.clock()
        routes: dict[int, tuple[RobotRoute, list[Pending]]] = {}
        for row in rows:
            entry = routes.setdefault(
                row["route_id"], (RobotRoute.from_row({**row, "id": row["route_id"]}), [])
            )
            entry[1].append(
                Pending(
                    row["id"],
                    row["checkpoint_id"],
                    row["message_id"],
                    row["event"],
                    row["payload"],
                    row["attempts"],
                    row["created_at"],
                    row["next_attempt_at"],
                )
            )
        return [
            (route, items)
            for route, items in routes.values()
            if items[0].next_attempt_at <= now  # the oldest holds the route
        ]

    def recent_sends(self, route_id: int, now: datetime) -> list[tuple[datetime, bool]]:
        since = now - timedelta(seconds=self.limits.window_s)
        with self.engine.connect() as conn:
            return [
                (at, bool(summary))
                for at, summary in conn.execute(
                    select(robot_send_t.c.at, robot_send_t.c.summary).where(
                        robot_send_t.c.route_id == route_id, robot_send_t.c.at > since
                    )
                ).all()
            ]

    # --- one pass --------------------------------------------------------------------
    def deliver_due(self) -> int:
        """Send what each robot route may send now. Returns the outbox rows delivered."""
        delivered = 0
        for route, items in self.pending():
            try:
                delivered += self._route_pass(route, items)
            except Exception:  # one route's bug must not stop the others
                log.exception("robot route %s: delivery pass failed", route.id)
        return delivered

    def _route_pass(self, route: RobotRoute, items: list[Pending]) -> int:
        now = self.clock()
        recent = self.recent_sends(route.id, now)
        if len(recent) >= self.limits.per_minute:
            return 0
        singles_free = self.limits.singles_per_minute - len(recent)
        if len(items) <= singles_free:
            delivered = 0
            for item in items:
                if not self._send(route, [item], summary=False):
                    break
                delivered += 1
            return delivered
        last_summary = max((at for at, summary in recent if summary), default=None)
        if last_summary is not None and (now - last_summary).total_seconds() < (
            self.limits.summary_spacing_s
        ):
            return 0
        batch = items[: self.limits.max_fold]
        return len(batch) if self._send(route, batch, summary=True) else 0

    def _send(self, route: RobotRoute, items: list[Pending], summary: bool) -> bool:
        started = time.perf_counter()
        try:
            events = [Event.from_payload(item.payload) for item in items]
            message = (  # one event alone reads as itself, even in a summary's slot
                summary_card(events, self.ctx, route.language)
                if len(events) > 1
                else card(events[0], self.ctx, route.language)
            )
            body = render(message, route)
        except (ValueError, KeyError, TypeError) as exc:
            result = DeliveryResult(False, error=f"cannot render: {exc}"[:500], retryable=False)
        else:
            first = items[0]
            outbound = OutboundMessage(
                outbox_id=first.outbox_id,
                channel=route.kind,
                checkpoint_id=first.checkpoint_id,
                message_id=first.message_id,
                event="summary" if summary else first.event,
                body=body,
                url=route.url,
                secret=route.secret,
            )
            notifier = self.notifiers.get(route.kind)
            if notifier is None:
                result = DeliveryResult(False, error=f"no notifier for {route.kind}")
            else:
                result = notifier.deliver(outbound)
        self._record(route, items, result, (time.perf_counter() - started) * 1000.0, summary)
        return result.ok

    # --- writing ---------------------------------------------------------------------
    def _record(
        self,
        route: RobotRoute,
        items: list[Pending],
        result: DeliveryResult,
        duration_ms: float,
        summary: bool,
    ) -> None:
        now = self.clock()
        ids = [item.outbox_id for item in items]
        error = (result.error or None) and result.error[:500]
        with self.engine.begin() as conn:
            conn.execute(
                insert(robot_send_t).values(
                    route_id=route.id,
                    at=now,
                    summary=summary,
                    outbox_ids=ids,
                    ok=result.ok,
                    retryable=result.retryable,
                    status_code=result.status_code,
                    robot_code=result.receiver_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            conn.execute(
                insert(attempt_t),
                [
                    {
                        "outbox_id": outbox_id,
                        "at": now,
                        "ok": result.ok,
                        "status_code": result.status_code,
                        "error": _attempt_error(error, len(ids)),
                        "duration_ms": duration_ms,
                    }
                    for outbox_id in ids
                ],
            )
            rows = outbox_t.c.id.in_(ids)
            if result.ok:
                mark_delivered(conn, rows, now)
                return
            tries = max(item.attempts for item in items) + 1
            delay = self.policy.delay(tries, result.retry_after_s, self.rng)
            oldest = min(item.created_at for item in items)
            give_up = not result.retryable or (
                (now - oldest).total_seconds() + delay > self.policy.give_up_after_s
            )
            log.warning(
                "robot route %s (%s): %s failed: %s%s",
                route.id,
                route.kind,
                f"summary of {len(ids)}" if summary else items[0].message_id,
                result.error,
                "; giving up" if give_up else f"; retry in {delay:.1f} s",
            )
            conn.execute(
                update(outbox_t)
                .where(rows)
                .values(
                    state="failed" if give_up else "pending",
                    attempts=outbox_t.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=delay),
                    last_error=(result.error or "failed")[:500],
                )
            )


def _attempt_error(error: str | None, covered: int) -> str | None:
    if covered < 2:
        return error
    return f"[summary of {covered}] {error or 'ok'}"[:500]
