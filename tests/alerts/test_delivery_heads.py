"""Which outbox messages are due: the oldest pending one of each lane, found through
the lane index whatever the backlog (services/alerts/delivery.py, LANE_HEADS), and the
ones after it that one pass sends in order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, update

from services.alerts.delivery import LANE_BURST, Deliverer
from services.alerts.event_rules import AlertType, Finding
from services.alerts.notifiers import DeliveryResult, OutboundMessage
from services.alerts.raising import raise_findings
from services.core.tables import outbox_t
from tests.support.alerts import T0, Clock, outbox, site_of, statements


def queue(engine: Engine, cp: str, count: int) -> list[int]:
    """`count` alerts at `cp`: one pending MQTT message each, in lane mqtt::<cp>."""
    site = site_of(engine, cp)
    findings = [
        Finding(AlertType.UNREGISTERED_ENTRY, cp, site, f"h:{cp}-{n}", "stranger", {})
        for n in range(count)
    ]
    with engine.begin() as conn:
        raise_findings(conn, findings, T0, lambda _: timedelta(minutes=2))
    return sorted(o.id for o in outbox(engine) if o.checkpoint_id == cp)


def test_due_gives_each_lanes_oldest_pending_message_only(seeded_engine: Engine) -> None:
    flooded = queue(seeded_engine, "cp-001", 300)
    waiting = queue(seeded_engine, "cp-002", 2)
    half_done = queue(seeded_engine, "cp-003", 2)
    with seeded_engine.begin() as conn:
        # cp-002's head waits for a retry: its second message must wait behind it
        conn.execute(
            update(outbox_t)
            .where(outbox_t.c.id == waiting[0])
            .values(next_attempt_at=T0 + timedelta(minutes=1))
        )
        conn.execute(
            update(outbox_t).where(outbox_t.c.id == half_done[0]).values(state="delivered")
        )
    deliverer = Deliverer(seeded_engine, {}, Clock())
    try:
        with statements(seeded_engine) as sent:
            due = deliverer.due()
        assert [m.outbox_id for m in due] == [flooded[0], half_done[1]]
        assert len(sent) == 2  # the lane heads, then their rows: not one per pending row
        assert [m.outbox_id for m in deliverer.due(limit=1)] == [flooded[0]]
        with statements(seeded_engine) as sent:
            lanes = deliverer.due_lanes(burst=LANE_BURST)
        assert len(sent) == 3  # the heads, their rows, the rows after them
        assert [[m.outbox_id for m in lane] for lane in lanes] == [
            flooded[:LANE_BURST],
            [half_done[1]],
        ]
    finally:
        deliverer.close()


class FailingSecond:
    """A channel that refuses the lane's second message once."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.sent: list[int] = []

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message.outbox_id)
        if message.outbox_id == self.refuse:
            self.refuse = -1
            return DeliveryResult(False, error="busy")
        return DeliveryResult(True)


def test_a_lane_stops_at_its_first_failure_and_resumes_in_order(seeded_engine: Engine) -> None:
    ids = queue(seeded_engine, "cp-001", 4)
    channel = FailingSecond(refuse=ids[1])
    clock = Clock()
    deliverer = Deliverer(seeded_engine, {"mqtt": channel}, clock)
    try:
        assert deliverer.deliver_due() == 1
        assert channel.sent == ids[:2]  # the third waits behind the failed second
        assert {o.id: o.state for o in outbox(seeded_engine)} == dict.fromkeys(ids, "pending") | {
            ids[0]: "delivered"
        }
        assert deliverer.deliver_due() == 0  # the retry is not due yet
        clock.advance(60)
        assert deliverer.run_until_idle() == 3
        assert channel.sent == [*ids[:2], *ids[1:]]
    finally:
        deliverer.close()
