"""The scheduled daily report: generate the report of the day that is due, store it
(`generated_report`) and queue its announcement to webhook routes, all in one
transaction; the alert service's deliverer sends it. The API process runs it at
CPM_REPORT_DAILY_AT local time (services/core/schedule.py `daily_at`), and of several
API processes only the one holding the report leadership (an advisory lock of its own,
services/alerts/leader.py) does. A run also generates the days missed since the
last report (the service was down at the time), up to a week back. A day is generated
once: the unique (kind, day) makes a second run, or a second process, a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from services.alerts.announce import DAILY_REPORT, enqueue_announcement
from services.alerts.leader import Leadership
from services.api.daily_report import build_daily_report
from services.core.db import utcnow
from services.core.report_model import DailyReport
from services.core.schedule import Schedule
from services.core.settings import Settings
from services.core.tables import dialect_insert, generated_report_t

log = logging.getLogger(__name__)
EVENT = "report.daily"
JOB = "daily-report"
REPORT_LOCK_KEY = 0x43504D52  # 'CPMR': not the alert workers' lock
CATCH_UP_DAYS = 7


def parse_local_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def due_day(now: datetime, at: time, timezone: str) -> date:
    """The latest day whose report time has come: yesterday once today's `at` has
    passed, the day before yesterday until then."""
    local = now.astimezone(ZoneInfo(timezone))
    yesterday = local.date() - timedelta(days=1)
    return yesterday if local.time() >= at else yesterday - timedelta(days=1)


def report_links(dashboard_url: str, day: date) -> dict[str, str]:
    base = dashboard_url.rstrip("/") + "/api/v1/reports/daily?"
    return {
        fmt: base + urlencode({"date": day.isoformat(), "format": fmt})
        for fmt in ("html", "xlsx", "json")
    }


class DailyReportJob:
    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.timezone = settings.timezone
        self.at = parse_local_time(settings.report_daily_at or "00:00")
        self.dashboard_url = settings.dashboard_url
        self.clock = clock

    def missing_days(self, due: date) -> list[date]:
        """`due`, and the days since the last generated report (a week at most)."""
        t = generated_report_t.c
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(t.day)).where(t.kind == "daily")).scalar()
        if last is None:
            return [due]
        first = max(last + timedelta(days=1), due - timedelta(days=CATCH_UP_DAYS - 1))
        return [first + timedelta(days=n) for n in range((due - first).days + 1)]

    def run(self) -> list[date]:
        """Generate the due reports that do not exist yet; returns the days generated."""
        now = self.clock()
        done = []
        for day in self.missing_days(due_day(now, self.at, self.timezone)):
            with Session(self.engine) as session:
                report = build_daily_report(session, day, self.timezone, now)
            if self.store(report):
                done.append(day)
        return done

    def store(self, report: DailyReport) -> bool:
        """Insert the report and queue its announcement; False if the day exists."""
        with self.engine.begin() as conn:
            row = {
                "kind": "daily",
                "day": report.day,
                "timezone": report.timezone,
                "generated_at": report.generated_at,
                "figures": report.figures_json(),
                "announced": 0,
            }
            inserted = conn.execute(
                dialect_insert(conn, generated_report_t)
                .values(row)
                .on_conflict_do_nothing(index_elements=["kind", "day"])
            )
            if not inserted.rowcount:
                return False
            data = {**report.headline(), "links": report_links(self.dashboard_url, report.day)}
            routes = enqueue_announcement(conn, DAILY_REPORT, EVENT, data, report.generated_at)
            t = generated_report_t.c
            conn.execute(
                update(generated_report_t)
                .where(t.kind == "daily", t.day == report.day)
                .values(announced=routes)
            )
        log.info("daily report of %s generated, announced to %d routes", report.day, routes)
        return True


class ReportLeadership(Leadership):
    """The alert workers' kind of leadership, on a lock of its own (another advisory
    lock key; on SQLite another file), so an API process never takes theirs."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, REPORT_LOCK_KEY)

    @property
    def lock_path(self) -> Path | None:
        path = super().lock_path
        return None if path is None else path.with_name(path.name.replace("alerts", "reports"))


def report_schedule(engine: Engine, settings: Settings) -> tuple[Schedule, ReportLeadership]:
    """The API's scheduler: the daily report at CPM_REPORT_DAILY_AT, leader only."""
    leadership = ReportLeadership(engine)
    schedule = Schedule(is_leader=leadership.is_leader)
    schedule.daily_at(
        parse_local_time(settings.report_daily_at),
        settings.timezone,
        DailyReportJob(engine, settings).run,
        name=JOB,
        leader_only=True,
    )
    return schedule, leadership
