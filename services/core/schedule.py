"""The one home of periodic work: APScheduler's background scheduler with this
project's defaults. Alert rows, timed rules and delivery (services/alerts/service.py)
and retention (`cpmon retention --every-hours`) run as jobs here; new periodic work
adds a job instead of a thread with a wait loop.

A job runs at most once at a time and missed runs are coalesced. A job may be woken
before its interval is up (`wake`: ingest announced a commit, an alert changed); a wake
that arrives while the job runs makes it run once more right after, so nothing
announced during a run waits a whole interval. A job marked `leader_only` runs only
while `is_leader()` says so (the PostgreSQL advisory lock of services/alerts/leader.py).
An exception is logged and counted; the job runs again at its next time. A job
may also run once a day at a local time (`daily_at`: a cron trigger in the community's
time zone, e.g. the daily report).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)


@dataclass
class _Job:
    name: str
    run: Callable[[], Any]
    leader_only: bool
    then: Callable[[Any], None] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    again: threading.Event = field(default_factory=threading.Event)


class _WokenWhileRunning(logging.Filter):
    """APScheduler warns when a job comes due while it still runs. For a job of ours
    that is a wake arriving as a run starts, and that run covers it (`_Job.again`): not
    worth a warning in the operator's log."""

    def __init__(self, jobs: dict[str, _Job]) -> None:
        super().__init__()
        self.jobs = jobs

    def filter(self, record: logging.LogRecord) -> bool:
        skipped = "maximum number of running instances" in str(record.msg)
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (skipped and getattr(job, "id", None) in self.jobs)


def daily_trigger(at: time, timezone: str) -> CronTrigger:
    """Every day at the local time `at` of `timezone` (a skipped or repeated hour of a
    daylight-saving change is APScheduler's: it fires once)."""
    return CronTrigger(hour=at.hour, minute=at.minute, second=0, timezone=ZoneInfo(timezone))


class Schedule:
    def __init__(self, is_leader: Callable[[], bool] = lambda: True) -> None:
        self.is_leader = is_leader
        self.errors = 0
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._jobs: dict[str, _Job] = {}
        self._quiet = _WokenWhileRunning(self._jobs)
        logging.getLogger("apscheduler.scheduler").addFilter(self._quiet)

    def every(
        self,
        seconds: float,
        run: Callable[[], Any],
        *,
        name: str,
        leader_only: bool = False,
        then: Callable[[Any], None] | None = None,
        start_now: bool = False,
    ) -> None:
        """Run `run()` every `seconds`; `then(result)` after a run that raised nothing."""
        job = _Job(name, run, leader_only, then)
        self._jobs[name] = job
        # (APScheduler reads next_run_time=None as "paused": leave it out unless now)
        first: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if start_now else {}
        self._scheduler.add_job(
            self._run,
            "interval",
            args=(job,),
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **first,
        )

    def daily_at(
        self,
        at: time,
        timezone: str,
        run: Callable[[], Any],
        *,
        name: str,
        leader_only: bool = False,
        then: Callable[[Any], None] | None = None,
    ) -> None:
        """Run `run()` every day at the local time `at`; `wake(name)` runs it now too."""
        job = _Job(name, run, leader_only, then)
        self._jobs[name] = job
        self._scheduler.add_job(
            self._run,
            daily_trigger(at, timezone),
            args=(job,),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def next_run(self, name: str) -> datetime | None:
        """When the job `name` runs next (None while the scheduler is not started)."""
        job = self._scheduler.get_job(name)
        when: datetime | None = getattr(job, "next_run_time", None)
        return when

    def wake(self, name: str) -> None:
        """Run the job `name` now (or right after the run in progress)."""
        job = self._jobs[name]
        job.again.set()
        if self._scheduler.running and not job.lock.locked():
            self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    def _run(self, job: _Job) -> None:
        with job.lock:
            while True:
                job.again.clear()
                self._run_once(job)
                if not job.again.is_set() or not self._scheduler.running:
                    return

    def _run_once(self, job: _Job) -> None:
        try:
            if job.leader_only and not self.is_leader():
                return
            result = job.run()
            if job.then is not None:
                job.then(result)
        except Exception:  # the database may be away: the next run tries again
            self.errors += 1
            log.exception("scheduled job %s failed", job.name)

    def start(self) -> None:
        self._scheduler.start()
        for name, job in self._jobs.items():
            if job.again.is_set():  # woken before the start
                self.wake(name)

    def shutdown(self) -> None:
        """Stop scheduling and wait for the runs in progress."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        logging.getLogger("apscheduler.scheduler").removeFilter(self._quiet)
