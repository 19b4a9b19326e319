"""The scheduled daily report: the trigger fires at the configured local time (computed
by APScheduler, no waiting), the job generates each due day once, catches up on missed
days, and its announcement reaches an opted-in webhook route, signed, through the
alert service's real deliverer; routes that did not opt in get nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from services.alerts import lifecycle, signing
from services.alerts.lifecycle import InvalidRoute
from services.alerts.service import AlertService
from services.api.report_job import (
    JOB,
    DailyReportJob,
    ReportLeadership,
    due_day,
    report_schedule,
)
from services.core.models.alerts import WebhookRouteCreate
from services.core.schedule import Schedule, daily_trigger
from services.core.tables import generated_report_t, outbox_t
from tests.support.alerts import Clock, add_reading
from tests.support.webhooks import WebhookReceiver

TZ = "Asia/Shanghai"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_trigger_fires_at_the_local_time_in_utc() -> None:
    trigger = daily_trigger(time(8, 0), TZ)
    # 2020-02-01 07:59 in Shanghai is 2020-01-31 23:59 UTC: today's 08:00 comes next
    fire = trigger.get_next_fire_time(None, utc(2020, 1, 31, 23, 59))
    assert fire is not None and fire.astimezone(UTC) == utc(2020, 2, 1, 0, 0)
    fire = trigger.get_next_fire_time(None, utc(2020, 2, 1, 0, 0, 1))  # just after: tomorrow
    assert fire is not None and fire.astimezone(UTC) == utc(2020, 2, 2, 0, 0)
    # a zone with daylight saving: 08:00 is 07:00 UTC in winter, 06:00 in summer
    berlin = daily_trigger(time(8, 0), "Europe/Berlin")
    winter = berlin.get_next_fire_time(None, utc(2021, 3, 27, 12, 0))
    summer = berlin.get_next_fire_time(None, utc(2021, 3, 28, 12, 0))
    assert winter is not None and winter.astimezone(UTC) == utc(2021, 3, 28, 6, 0)
    assert summer is not None and summer.astimezone(UTC) == utc(2021, 3, 29, 6, 0)


def test_the_schedule_holds_the_job_at_the_next_local_time() -> None:
    schedule = Schedule()
    schedule.daily_at(time(23, 30), TZ, lambda: None, name="report")
    schedule.start()
    try:
        now = datetime.now(UTC)
        expected = daily_trigger(time(23, 30), TZ).get_next_fire_time(None, now)
        when = schedule.next_run("report")
        assert when is not None and expected is not None
        assert when.astimezone(UTC) == expected.astimezone(UTC)
        local = when.astimezone(ZoneInfo(TZ))
        assert (local.hour, local.minute) == (23, 30)
        assert timedelta(0) < when - now <= timedelta(days=1)
    finally:
        schedule.shutdown()


def test_due_day_is_yesterday_once_the_time_has_passed() -> None:
    at = time(8, 0)
    assert due_day(utc(2020, 2, 1, 23, 59), at, TZ) == date(2020, 1, 31)  # 07:59 on 2 Feb
    assert due_day(utc(2020, 2, 2, 0, 0), at, TZ) == date(2020, 2, 1)  # 08:00 on 2 Feb


def add_route(engine: Engine, url: str, secret: str, types: list[str] | None) -> int:
    with Session(engine) as session:
        route = lifecycle.create_route(
            session, WebhookRouteCreate(name="office", url=url, secret=secret, types=types)
        )
        session.commit()
        assert route.id is not None
        return route.id


def test_job_generates_once_catches_up_and_announces_to_opted_in_routes(
    seeded_engine: Engine, make_settings: Callable[..., Any]
) -> None:
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret)
    others = WebhookReceiver(secret)
    try:
        add_route(seeded_engine, receiver.url, secret, ["daily_report"])
        add_route(seeded_engine, others.url, secret, None)  # every alert, no reports
        settings = make_settings(report_daily_at="08:00", dashboard_url="https://cpm.example")
        clock = Clock(utc(2020, 2, 2, 1, 0))
        add_reading(seeded_engine, cp="cp-001", temp_c=38.4, ts=clock.now)
        alerts = AlertService(settings, seeded_engine, clock=clock)
        alerts.process()  # a fever alert opened on 2 Feb (local)
        clock.now = utc(2020, 2, 3, 0, 5)  # 08:05 on 3 Feb in Shanghai
        job = DailyReportJob(seeded_engine, settings, clock)
        assert job.run() == [date(2020, 2, 2)]
        assert job.run() == []  # once only
        clock.now = utc(2020, 2, 5, 23, 0)  # 07:00 on 6 Feb: 3 and 4 Feb are due
        assert job.run() == [date(2020, 2, 3), date(2020, 2, 4)]
        with seeded_engine.connect() as conn:
            rows = conn.execute(
                select(generated_report_t).order_by(generated_report_t.c.day)
            ).mappings()
            stored = {row["day"]: row for row in rows}
            pending = conn.execute(
                select(func.count()).select_from(outbox_t).where(outbox_t.c.alert_id.is_(None))
            ).scalar()
        assert sorted(stored) == [date(2020, 2, 2), date(2020, 2, 3), date(2020, 2, 4)]
        assert all(row["announced"] == 1 for row in stored.values())
        assert stored[date(2020, 2, 2)]["figures"]["community"]["alerts"]["fever"] == 1
        kept = stored[date(2020, 2, 2)]["figures"]
        assert "alerts" not in kept and "sections" not in kept  # figures only, no names
        assert kept["day"] == "2020-02-02" and len(kept["sites"]) == 20
        assert pending == 3

        assert alerts.deliver() >= 3
        reports = [r for r in receiver.accepted() if r["body"]["type"] == "report.daily"]
        assert [r["body"]["data"]["date"] for r in reports] == [
            "2020-02-02",
            "2020-02-03",
            "2020-02-04",
        ]
        assert all(r["verified"] for r in reports)
        first = reports[0]["body"]["data"]
        assert first["fevers"] == 1 and first["fevers_open"] == 1
        assert first["links"]["xlsx"] == (
            "https://cpm.example/api/v1/reports/daily?date=2020-02-02&format=xlsx"
        )
        assert all(r["body"]["type"] != "report.daily" for r in others.accepted())
        assert not any(r["body"]["type"].startswith("alert.") for r in receiver.accepted())
    finally:
        receiver.stop()
        others.stop()


def test_a_route_may_name_the_daily_report_but_no_unknown_type(seeded_engine: Engine) -> None:
    with Session(seeded_engine) as session, pytest.raises(InvalidRoute, match="bogus"):
        lifecycle.create_route(
            session,
            WebhookRouteCreate(
                name="x", url="http://127.0.0.1:1/h", types=["daily_report", "bogus"]
            ),
        )


def test_only_the_report_leader_runs_the_job(
    seeded_engine: Engine, make_settings: Callable[..., Any]
) -> None:
    first, second = ReportLeadership(seeded_engine), ReportLeadership(seeded_engine)
    try:
        assert first.is_leader()
        if seeded_engine.dialect.name == "postgresql" or first.lock_path is not None:
            assert not second.is_leader()
        path = first.lock_path
        assert path is None or path.name.endswith(".reports-leader")
    finally:
        first.release()
        second.release()
    schedule, leadership = report_schedule(seeded_engine, make_settings())
    try:
        assert schedule.next_run(JOB) is None  # not started: nothing runs
    finally:
        leadership.release()
