"""Robot routes end to end on both databases: alerts in the outbox, the dispatcher, and
local receivers (127.0.0.1) that hold each robot to its documented contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.alerts.robot_receivers import RATE_LIMIT, RobotReceiver, mentioned, text_of
from tests.alerts.robot_support import (
    Clock,
    Robots,
    acknowledge,
    add_route,
    checkpoints,
    escalate,
    outbox_states,
    raise_fever,
    resolve,
    sends,
)

KINDS = ("wecom", "dingtalk", "feishu")
SECRETS = {"wecom": "", "dingtalk": "SEC0123456789abcdefDUTY", "feishu": "feishuSecret0123456789"}
MENTIONS = {
    "wecom": ["13800000001", "13800000002"],
    "dingtalk": ["13800000001", "13800000002"],
    "feishu": ["ou_duty0001", "ou_duty0002"],
}
PAUSE_S = {"dingtalk": 600.0, "wecom": 60.0, "feishu": 60.0}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def robots(seeded_engine: Engine, clock: Clock) -> Iterator[Robots]:
    robots = Robots(seeded_engine, clock)
    yield robots
    robots.close()


@pytest.fixture
def receivers() -> Iterator[list[RobotReceiver]]:
    made: list[RobotReceiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(made: list[RobotReceiver], kind: str, clock: Clock, **values: Any) -> RobotReceiver:
    robot = RobotReceiver(kind, clock=clock.wall, **values)
    made.append(robot)
    return robot


@pytest.mark.parametrize("kind", KINDS)
def test_every_event_reaches_each_robot_once_in_its_format_and_language(
    kind: str,
    seeded_engine: Engine,
    clock: Clock,
    robots: Robots,
    receivers: list[RobotReceiver],
) -> None:
    secret = SECRETS[kind]
    duty = receiver(receivers, kind, clock, secret=secret, token="dutytoken0123456789abcdef")
    boss = receiver(receivers, kind, clock, secret=secret, token="bosstoken0123456789abcdef")
    add_route(seeded_engine, kind, duty.url, secret=secret or None, mentions=MENTIONS[kind])
    add_route(
        seeded_engine,
        kind,
        boss.url,
        secret=secret or None,
        language="en",
        escalation=True,
        mentions=MENTIONS[kind],
    )
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    alert_id = raise_fever(seeded_engine, clock, cp, site, "h:3f2a9c01")
    robots.deliver()
    clock.advance(180)
    assert escalate(seeded_engine, clock) == [alert_id]
    robots.deliver()
    clock.advance(30)
    acknowledge(seeded_engine, clock, alert_id, "duty-wang")
    robots.deliver()
    clock.advance(600)
    resolve(seeded_engine, clock, alert_id, "sent_to_fever_clinic", "escorted <@all> [x](http://e)")
    robots.deliver()
    robots.deliver()  # nothing left: a second pass sends nothing twice

    assert duty.refused() == [] and boss.refused() == []
    duty_texts = [text_of(kind, r.body) for r in duty.accepted()]
    boss_texts = [text_of(kind, r.body) for r in boss.accepted()]
    # duty: opened, acknowledged, resolved (Chinese); supervisors: escalated and what
    # followed (English); each exactly once
    assert len(duty_texts) == 3 and len(boss_texts) == 3
    assert ["新告警" in duty_texts[0], "已确认" in duty_texts[1], "已解除" in duty_texts[2]] == [
        True
    ] * 3
    assert ["Escalated" in boss_texts[0], "Acknowledged" in boss_texts[1]] == [True, True]
    assert "Resolved" in boss_texts[2]
    opened = duty_texts[0]
    for expected in (cp, site, "发热 38.6 °C", "紧急", "2026-03-01 16:00:00", "北京时间"):
        assert expected in opened, (expected, opened)
    assert "证件尾号 123X" in opened and "4403" not in opened and "3f2a9c01" not in opened
    assert f"http://127.0.0.1:8000/#alert/{alert_id}" in opened
    assert "Fever 38.6 °C" in boss_texts[0] and "level 1" in boss_texts[0]
    assert "duty-wang" in duty_texts[1]
    # the staff's note is text, not markup or a mention of everybody
    assert "＜＠all＞" in duty_texts[2] and "<@all>" not in duty_texts[2]
    assert "](http://e)" not in duty_texts[2]
    # @-mentions: the duty numbers on the critical alert's first notice and escalation only
    expected_mentions = MENTIONS[kind]
    assert mentioned(kind, duty.accepted()[0].body) == expected_mentions
    assert mentioned(kind, boss.accepted()[0].body) == expected_mentions
    assert all(mentioned(kind, r.body) == [] for r in duty.accepted()[1:])
    # every request carried a valid signature where the robot has a secret
    assert all(r.signed for r in duty.received + boss.received) == bool(secret)
    for route_id in (1, 2):
        assert {state for state, _ in outbox_states(seeded_engine, route_id)} == {"delivered"}


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
def test_a_wrong_secret_is_refused_by_the_robot_and_not_retried(
    kind: str,
    seeded_engine: Engine,
    clock: Clock,
    robots: Robots,
    receivers: list[RobotReceiver],
) -> None:
    robot = receiver(receivers, kind, clock, secret=SECRETS[kind])
    wrong = "SEC0000000000000000WRONG" if kind == "dingtalk" else "wrongSecret000000000000"
    route_id = add_route(seeded_engine, kind, robot.url, secret=wrong)
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    raise_fever(seeded_engine, clock, cp, site, "h:aaaa0001")
    robots.deliver()
    clock.advance(3600)
    robots.deliver()  # not sent again: the same signature would fail the same way

    [refusal] = robot.received
    assert refusal.code == (310000 if kind == "dingtalk" else 19021)
    assert outbox_states(seeded_engine, route_id) == [("failed", 1)]
    [send] = sends(seeded_engine, route_id)
    assert send["robot_code"] == refusal.code and send["retryable"] is False


def test_an_unknown_wecom_key_fails_without_retry(
    seeded_engine: Engine, clock: Clock, robots: Robots, receivers: list[RobotReceiver]
) -> None:
    robot = receiver(receivers, "wecom", clock)
    route_id = add_route(seeded_engine, "wecom", robot.url.replace(robot.token, "nosuchkey"))
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    raise_fever(seeded_engine, clock, cp, site, "h:aaaa0002")
    robots.deliver()
    clock.advance(3600)
    robots.deliver()
    assert len(robot.received) == 1 and robot.received[0].code != 0
    assert outbox_states(seeded_engine, route_id) == [("failed", 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limit_code_is_retried_after_the_documented_pause(
    kind: str,
    seeded_engine: Engine,
    clock: Clock,
    robots: Robots,
    receivers: list[RobotReceiver],
) -> None:
    robot = receiver(receivers, kind, clock, secret=SECRETS[kind])
    route_id = add_route(seeded_engine, kind, robot.url, secret=SECRETS[kind] or None)
    robot.forced.append(RATE_LIMIT[kind])
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    raise_fever(seeded_engine, clock, cp, site, "h:aaaa0003")
    robots.deliver()
    assert outbox_states(seeded_engine, route_id) == [("pending", 1)]
    clock.advance(PAUSE_S[kind] - 1)
    robots.deliver()
    assert len(robot.received) == 1  # waited out the robot's pause
    clock.advance(2)
    robots.deliver()
    assert [r.code for r in robot.received] == [RATE_LIMIT[kind], 0]
    assert outbox_states(seeded_engine, route_id) == [("delivered", 2)]
    assert [s["retryable"] for s in sends(seeded_engine, route_id)] == [True, True]


def test_the_alert_service_delivers_robot_routes_with_its_dashboard_link(
    seeded_engine: Engine, make_settings: Any, receivers: list[RobotReceiver]
) -> None:
    from services.alerts.service import AlertService

    robot = RobotReceiver("feishu", secret=SECRETS["feishu"])
    receivers.append(robot)
    add_route(seeded_engine, "feishu", robot.url, secret=SECRETS["feishu"], language="en")
    settings = make_settings(dashboard_url="https://duty.example.cn/board")
    service = AlertService(settings, seeded_engine)
    try:
        [(cp, site)] = list(checkpoints(seeded_engine, 1))
        alert_id = raise_fever(seeded_engine, Clock(), cp, site, "h:svc00001")
        service.deliver()
    finally:
        service.deliverer.close()
        service.webhooks.close()
    [request] = robot.accepted()
    assert request.signed
    assert f"https://duty.example.cn/board/#alert/{alert_id}" in text_of("feishu", request.body)


def test_an_unreachable_robot_is_retried_and_its_url_never_logged(
    seeded_engine: Engine, clock: Clock, robots: Robots, caplog: pytest.LogCaptureFixture
) -> None:
    closed = RobotReceiver("dingtalk", secret=SECRETS["dingtalk"], token="secrettoken0123456789ab")
    url = closed.url
    closed.close()  # nothing listens there any more (127.0.0.1)
    route_id = add_route(seeded_engine, "dingtalk", url, secret=SECRETS["dingtalk"])
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    raise_fever(seeded_engine, clock, cp, site, "h:aaaa0004")
    with caplog.at_level("DEBUG"):
        robots.deliver()
    assert outbox_states(seeded_engine, route_id) == [("pending", 1)]
    [send] = sends(seeded_engine, route_id)
    assert send["retryable"] is True and "ConnectError" in send["error"]
    logged = caplog.text + str(send)
    assert "secrettoken0123456789ab" not in logged and SECRETS["dingtalk"] not in logged
    assert "retry in" in caplog.text


def test_a_delivered_message_logs_no_url_as_the_services_log(
    seeded_engine: Engine,
    clock: Clock,
    robots: Robots,
    receivers: list[RobotReceiver],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from services.core.logs import setup_logging

    robot = receiver(receivers, "dingtalk", clock, secret=SECRETS["dingtalk"])
    add_route(seeded_engine, "dingtalk", robot.url, secret=SECRETS["dingtalk"])
    [(cp, site)] = list(checkpoints(seeded_engine, 1))
    raise_fever(seeded_engine, clock, cp, site, "h:aaaa0005")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("DEBUG")  # the services' own set-up, at its most talkative
        robots.deliver()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert len(robot.accepted()) == 1
    assert robot.token not in capsys.readouterr().err  # httpx would log the URL at INFO
