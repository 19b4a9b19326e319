"""Delivering the outbox: at least once, in order per lane, with backoff.

A lane is `channel:route:checkpoint`. Only the oldest pending message of a lane is ever
in flight, so a checkpoint's later alert never overtakes an earlier one at a receiver;
a pass sends a lane's due messages one after another (up to LANE_BURST), stopping at
the first that fails.
Lanes go out in parallel, so a slow webhook holds up only its own lanes. A message is
marked delivered after the channel confirms it; a crash in between sends it again after
the restart (receivers de-duplicate on `webhook-id`). Each attempt is recorded.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    or_,
    select,
    text,
    union_all,
    update,
)

from services.alerts.bulk import insert_rows, plans_for_now
from services.alerts.notifiers import DeliveryResult, Notifier, OutboundMessage
from services.core.settings import Settings
from services.core.tables import attempt_t, outbox_t, route_t

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a failed delivery again (CPM_WEBHOOK_RETRY_* settings)."""

    base_s: float = 1.0
    cap_s: float = 300.0
    give_up_after_s: float = 24 * 3600.0
    retry_after_cap_s: float = 3600.0

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(
            base_s=s.webhook_retry_base_s,
            cap_s=s.webhook_retry_cap_s,
            give_up_after_s=s.webhook_give_up_after_s,
            retry_after_cap_s=s.webhook_retry_after_cap_s,
        )

    def delay(self, attempts: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Exponential backoff with jitter (half to full of the step); a receiver's
        Retry-After is a floor, within reason."""
        step = min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))
        delay = step * rng.uniform(0.5, 1.0)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_cap_s))
        return delay


# The oldest pending row of every lane, reading O(lanes) index entries however long the
# backlog: a loose index scan of ix_outbox_lane (lane, state, id), the next lane after
# each, then its first pending id. Both engines answer each MIN from the index; a
# NOT EXISTS over all pending rows read every one of them on each pass, and a flood of
# one checkpoint's alerts made every other checkpoint's delivery wait on it.
LANE_HEADS = text(
    """
    WITH RECURSIVE lanes(lane) AS (
        SELECT MIN(lane) FROM outbox
        UNION ALL
        SELECT (SELECT MIN(o.lane) FROM outbox o WHERE o.lane > lanes.lane)
        FROM lanes WHERE lanes.lane IS NOT NULL
    )
    SELECT (
        SELECT MIN(o.id) FROM outbox o WHERE o.lane = lanes.lane AND o.state = 'pending'
    )
    FROM lanes WHERE lanes.lane IS NOT NULL
    """
)


LANE_BURST = 50  # a lane's messages sent in one pass at most: a flooded lane drains in
# bursts instead of one message per pass (and per transaction) ...
LANE_BURST_S = 0.1  # ... for this long at most, so the next pass (a new fever's lane) is near


def with_route(*where: Any) -> Select[Any]:
    """Outbox rows with their route's address and secret."""
    return (
        select(outbox_t, route_t.c.url, route_t.c.secret)
        .outerjoin(route_t, route_t.c.id == outbox_t.c.route_id)
        .where(outbox_t.c.state == "pending", *where)
    )


def followers(heads: Sequence[Any], burst: int) -> Select[Any]:
    """Ids of the pending messages after each head in its lane, `burst - 1` at most
    each: one statement, each part an index range of ix_outbox_lane with a LIMIT."""
    parts = [
        select(outbox_t.c.id)
        .where(outbox_t.c.lane == head.lane, outbox_t.c.state == "pending", outbox_t.c.id > head.id)
        .order_by(outbox_t.c.id)
        .limit(burst - 1)
        .subquery()
        for head in heads
    ]
    selects = [select(part.c.id) for part in parts]
    return selects[0] if len(selects) == 1 else union_all(*selects)  # type: ignore[return-value]


def outbound(row: Any) -> OutboundMessage:
    return OutboundMessage(
        outbox_id=row.id,
        channel=row.channel,
        checkpoint_id=row.checkpoint_id,
        message_id=row.message_id,
        event=row.event,
        body=row.payload.encode("utf-8"),
        url=row.url,
        secret=row.secret,
    )


def mark_delivered(conn: Connection, rows: ColumnElement[bool], now: datetime) -> None:
    """Outbox rows done: delivered now, the successful attempt counted."""
    conn.execute(
        update(outbox_t)
        .where(rows)
        .values(
            state="delivered", delivered_at=now, attempts=outbox_t.c.attempts + 1, last_error=None
        )
    )


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        notifiers: Mapping[str, Notifier],
        clock: Callable[[], datetime],
        policy: RetryPolicy | None = None,
        parallel: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="alert-deliver")
        self.delivered = 0
        self.failed_attempts = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def due(self, limit: int = 200) -> list[OutboundMessage]:
        """The oldest pending message of each lane whose time has come."""
        return [lane[0] for lane in self.due_lanes(limit, burst=1)]

    def due_lanes(self, limit: int = 200, burst: int = LANE_BURST) -> list[list[OutboundMessage]]:
        """Up to `limit` lanes whose oldest pending message is due: each with that
        message and the next ones of the lane due too, up to `burst` in all, in order."""
        now = self.clock()
        with self.engine.connect() as conn:
            heads = [row[0] for row in conn.execute(LANE_HEADS) if row[0] is not None]
            if not heads:
                return []
            rows = conn.execute(
                with_route(outbox_t.c.id.in_(heads), outbox_t.c.next_attempt_at <= now)
                # group robots are rate-limited per robot: robots/dispatch.py sends them
                .where(or_(route_t.c.kind.is_(None), route_t.c.kind == "standard"))
                .order_by(outbox_t.c.id)
                .limit(limit)
            ).all()
            lanes = {row.lane: [row] for row in rows}
            if burst > 1 and rows:
                for row in conn.execute(with_route(outbox_t.c.id.in_(followers(rows, burst)))):
                    lanes[row.lane].append(row)
        due: list[list[OutboundMessage]] = []
        for lane in lanes.values():
            lane.sort(key=lambda r: r.id)
            waiting = [n for n, r in enumerate(lane) if r.next_attempt_at > now]
            due.append([outbound(r) for r in lane[: min(waiting, default=len(lane))]])
        return due

    def _send(self, message: OutboundMessage) -> tuple[DeliveryResult, float]:
        started = time.perf_counter()
        notifier = self.notifiers.get(message.channel)
        if notifier is None:
            result = DeliveryResult(False, error=f"no notifier for channel {message.channel}")
        else:
            try:
                result = notifier.deliver(message)
            except Exception as exc:  # a notifier bug must not stop delivery
                log.exception("notifier %s raised", message.channel)
                result = DeliveryResult(False, error=f"{type(exc).__name__}: {exc}"[:500])
        return result, (time.perf_counter() - started) * 1000.0

    def deliver_due(self, limit: int = 200) -> int:
        """One pass: send the due messages of each lane (lanes in parallel, a lane's in
        order, stopping at its first failure), record the outcomes. Returns how many
        messages were delivered."""
        lanes = self.due_lanes(limit)
        if not lanes:
            return 0
        sent = [pair for lane in self.pool.map(self._send_lane, lanes) for pair in lane]
        messages = [message for message, _ in sent]
        outcomes = [outcome for _, outcome in sent]
        self._record(messages, outcomes)
        return sum(1 for result, _ in outcomes if result.ok)

    def _send_lane(
        self, lane: list[OutboundMessage]
    ) -> list[tuple[OutboundMessage, tuple[DeliveryResult, float]]]:
        """A lane's messages one after another; after a failure the rest wait (order)."""
        sent = []
        started = time.perf_counter()
        for message in lane:
            outcome = self._send(message)
            sent.append((message, outcome))
            if not outcome[0].ok or time.perf_counter() - started > LANE_BURST_S:
                break
        return sent

    def run_until_idle(self, max_passes: int = 50) -> int:
        """Deliver until nothing more is due now (lane successors become due at once)."""
        total = 0
        for _ in range(max_passes):
            sent = self.deliver_due()
            total += sent
            if sent == 0:
                break
        return total

    def _record(
        self, messages: list[OutboundMessage], outcomes: list[tuple[DeliveryResult, float]]
    ) -> None:
        now = self.clock()
        failed = [
            m.outbox_id for m, (result, _) in zip(messages, outcomes, strict=True) if not result.ok
        ]
        with self.engine.begin() as conn:
            plans_for_now(conn)  # each attempt row's foreign key is checked (bulk.py)
            created = (
                dict(
                    conn.execute(
                        select(outbox_t.c.id, outbox_t.c.created_at).where(
                            outbox_t.c.id.in_(failed)
                        )
                    ).all()
                )
                if failed
                else {}
            )
            # one statement for every success: the write lock is held for a moment, not
            # for an UPDATE per message while the alert processor and ingest wait on it
            delivered = [
                m.outbox_id for m, (result, _) in zip(messages, outcomes, strict=True) if result.ok
            ]
            if delivered:
                mark_delivered(conn, outbox_t.c.id.in_(delivered), now)
                self.delivered += len(delivered)
            attempts = []
            for message, (result, duration_ms) in zip(messages, outcomes, strict=True):
                attempts.append(
                    {
                        "outbox_id": message.outbox_id,
                        "at": now,
                        "ok": result.ok,
                        "status_code": result.status_code,
                        "error": (result.error or None) and result.error[:500],
                        "duration_ms": duration_ms,
                    }
                )
                if result.ok:
                    continue
                row = outbox_t.c.id == message.outbox_id
                self.failed_attempts += 1
                conn.execute(update(outbox_t).where(row).values(attempts=outbox_t.c.attempts + 1))
                tries = conn.execute(select(outbox_t.c.attempts).where(row)).scalar_one()
                delay = self.policy.delay(tries, result.retry_after_s, self.rng)
                age = (now - created.get(message.outbox_id, now)).total_seconds()
                give_up = not result.retryable or age + delay > self.policy.give_up_after_s
                log.warning(
                    "delivery %s failed (attempt %d): %s%s",
                    message.message_id,
                    tries,
                    result.error,
                    "; giving up" if give_up else f"; retry in {delay:.1f} s",
                    extra={"checkpoint_id": message.checkpoint_id},
                )
                conn.execute(
                    update(outbox_t)
                    .where(row)
                    .values(
                        state="failed" if give_up else "pending",
                        next_attempt_at=now + timedelta(seconds=delay),
                        last_error=(result.error or "failed")[:500],
                    )
                )
            insert_rows(conn, attempt_t, attempts)
