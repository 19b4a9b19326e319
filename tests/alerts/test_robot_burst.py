"""A burst of alerts reaches a robot folded into summary messages within its rate limit
(about 20 a minute), and nothing is lost: every outbox row is delivered once, alone or
inside a summary that says how many alert events it covers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.core.models.alerts import Outbox
from services.core.tables import table_of
from tests.alerts.robot_receivers import RobotReceiver, text_of
from tests.alerts.robot_support import (
    Clock,
    Robots,
    add_route,
    checkpoints,
    outbox_states,
    raise_fever,
    sends,
)
from tests.support import wait_until

KINDS = ("wecom", "dingtalk", "feishu")
SECRETS = {"wecom": "", "dingtalk": "SEC0123456789abcdefBURST", "feishu": "feishuBurst0123456789"}
outbox_t = table_of(Outbox)
COVERS = re.compile(r"(\d+) (?:条告警事件|alert events)")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def robots(seeded_engine: Engine, clock: Clock) -> Iterator[Robots]:
    robots = Robots(seeded_engine, clock)
    yield robots
    robots.close()


def every_row_delivered_once(engine: Engine, route_id: int, expected: int) -> list[dict]:
    sent = sends(engine, route_id)
    covered = [i for s in sent if s["ok"] for i in s["outbox_ids"]]
    assert len(covered) == len(set(covered)) == expected  # each row in one delivered request
    assert outbox_states(engine, route_id) == [("delivered", 1)] * expected
    return sent


@pytest.mark.parametrize("kind", KINDS)
def test_twenty_alerts_at_once_go_out_as_one_summary(
    kind: str, seeded_engine: Engine, clock: Clock, robots: Robots
) -> None:
    robot = RobotReceiver(kind, secret=SECRETS[kind], clock=clock.wall)
    try:
        route_id = add_route(seeded_engine, kind, robot.url, secret=SECRETS[kind] or None)
        for n, (cp, site) in enumerate(checkpoints(seeded_engine, 20)):
            raise_fever(seeded_engine, clock, cp, site, f"h:burst{n:04d}")
        started = time.perf_counter()
        delivered = robots.deliver()
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"\n{kind}: 20 alerts -> {len(robot.received)} request(s) in {elapsed_ms:.0f} ms")
        assert delivered == 20
        [summary] = robot.accepted()
        text = text_of(kind, summary.body)
        assert COVERS.search(text) and COVERS.search(text).group(1) == "20"  # type: ignore[union-attr]
        assert text.count("/#alert/") == 20  # each alert listed with its link
        every_row_delivered_once(seeded_engine, route_id, 20)
    finally:
        robot.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_sustained_flood_stays_within_twenty_a_minute_and_loses_nothing(
    kind: str, seeded_engine: Engine, clock: Clock, robots: Robots
) -> None:
    """90 alerts, one a second for a minute and a half (three times what a robot
    takes), the dispatcher running every second."""
    robot = RobotReceiver(kind, secret=SECRETS[kind], clock=clock.wall)
    try:
        route_id = add_route(seeded_engine, kind, robot.url, secret=SECRETS[kind] or None)
        start = clock()
        places = list(checkpoints(seeded_engine, 90))
        for n, (cp, site) in enumerate(places):
            raise_fever(seeded_engine, clock, cp, site, f"h:flood{n:04d}")
            robots.deliver()
            clock.advance(1)
        for _ in range(600):  # drain: at most 10 more minutes
            if all(state == "delivered" for state, _ in outbox_states(seeded_engine, route_id)):
                break
            robots.deliver()
            clock.advance(1)
        assert robot.refused() == []  # never ran into the robot's own limit
        times = [r.at for r in robot.received]
        assert max(sum(1 for t in times if s <= t < s + 60) for s in times) <= 20
        sent = every_row_delivered_once(seeded_engine, route_id, 90)
        singles = [s for s in sent if len(s["outbox_ids"]) == 1]
        summaries = [s for s in sent if len(s["outbox_ids"]) > 1]
        assert summaries, "a flood above 15 a minute is folded"
        for send, request in zip(sent, robot.received, strict=True):
            if len(send["outbox_ids"]) > 1:
                found = COVERS.search(text_of(kind, request.body))
                assert found and int(found.group(1)) == len(send["outbox_ids"])
        last = max(s["at"] for s in sent)
        with seeded_engine.connect() as conn:
            waits = [
                (d - c).total_seconds()
                for d, c in conn.execute(
                    select(outbox_t.c.delivered_at, outbox_t.c.created_at).where(
                        outbox_t.c.route_id == route_id
                    )
                )
            ]
        print(
            f"\n{kind}: 90 alerts over {len(places)} s -> {len(sent)} requests "
            f"({len(singles)} single, {len(summaries)} summaries of "
            f"{[len(s['outbox_ids']) for s in summaries]}), last delivered "
            f"{(last - start).total_seconds():.0f} s after the first alert, longest wait "
            f"{max(waits):.0f} s"
        )
    finally:
        robot.close()


@pytest.mark.parametrize("kind", ["dingtalk"])
def test_a_burst_through_the_running_alert_service_is_folded_in_real_time(
    kind: str, seeded_engine: Engine, make_settings: Any, mqtt_url: str
) -> None:
    """The alert service as deployed (its delivery thread, the real clock): 20 alerts
    committed at once reach the robot in at most 16 requests, at least one a summary."""
    from services.alerts.service import AlertService
    from services.core.db import utcnow

    robot = RobotReceiver(kind, secret=SECRETS[kind])
    service = AlertService(make_settings(), seeded_engine)
    try:
        route_id = add_route(seeded_engine, kind, robot.url, secret=SECRETS[kind])
        service.start()
        started = time.perf_counter()
        now = Clock(utcnow())
        for n, (cp, site) in enumerate(checkpoints(seeded_engine, 20)):
            raise_fever(seeded_engine, now, cp, site, f"h:live{n:04d}")
        wait_until(
            lambda: all(s == "delivered" for s, _ in outbox_states(seeded_engine, route_id)),
            timeout=30,
        )
        elapsed = time.perf_counter() - started
    finally:
        service.stop()
        robot.close()
    sent = every_row_delivered_once(seeded_engine, route_id, 20)
    assert robot.refused() == [] and len(sent) <= 16
    assert any(len(s["outbox_ids"]) > 1 for s in sent)
    print(
        f"\n{kind} via AlertService: 20 alerts -> {len(sent)} requests "
        f"{[len(s['outbox_ids']) for s in sent]}, all delivered {elapsed:.2f} s after the first"
    )
