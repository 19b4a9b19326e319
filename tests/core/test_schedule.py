"""The scheduler every periodic job runs on: woken jobs run at once, a wake during a
run makes one more run, leader-only jobs wait for leadership, errors are survived."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.core.schedule import Schedule
from tests.support import wait_until

HOUR = 3600.0  # intervals no test waits for: only wake() makes these jobs run


@pytest.fixture
def schedule() -> Iterator[Schedule]:
    schedule = Schedule()
    yield schedule
    schedule.shutdown()


def test_a_woken_job_runs_and_hands_its_result_on(schedule: Schedule) -> None:
    results: list[int] = []
    schedule.every(HOUR, lambda: 7, name="job", then=results.append)
    schedule.start()
    schedule.wake("job")
    assert wait_until(lambda: results == [7])


def test_a_wake_during_a_run_makes_one_more_run(schedule: Schedule) -> None:
    release = threading.Event()
    runs: list[int] = []

    def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            release.wait(10)

    schedule.every(HOUR, job, name="job")
    schedule.start()
    schedule.wake("job")
    wait_until(lambda: len(runs) == 1)
    schedule.wake("job")  # arrives while the first run is still going
    release.set()
    assert wait_until(lambda: len(runs) == 2)


def test_leader_only_jobs_run_only_while_leading(schedule: Schedule) -> None:
    leading = threading.Event()
    asked: list[bool] = []

    def is_leader() -> bool:
        asked.append(leading.is_set())
        return asked[-1]

    schedule.is_leader = is_leader
    ran: list[str] = []
    schedule.every(HOUR, lambda: ran.append("leader"), name="timed", leader_only=True)
    schedule.every(HOUR, lambda: ran.append("any"), name="rows")
    schedule.start()
    schedule.wake("timed")
    schedule.wake("rows")
    wait_until(lambda: asked == [False] and "any" in ran)  # rows never asks
    assert "leader" not in ran
    leading.set()
    schedule.wake("timed")
    assert wait_until(lambda: "leader" in ran)


def test_a_failing_job_is_logged_counted_and_runs_again(
    schedule: Schedule, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")

    schedule.every(HOUR, flaky, name="flaky")
    schedule.start()
    schedule.wake("flaky")
    wait_until(lambda: schedule.errors == 1)
    assert "scheduled job flaky failed" in caplog.text
    schedule.wake("flaky")
    assert wait_until(lambda: len(calls) == 2)
    assert schedule.errors == 1


def test_a_wake_as_a_run_starts_is_not_reported_as_a_skipped_run(
    schedule: Schedule, caplog: pytest.LogCaptureFixture
) -> None:
    """APScheduler's 'maximum number of running instances' warning is about a wake the
    run in progress covers; it stays out of the log for our jobs."""
    release = threading.Event()
    runs: list[int] = []

    def job() -> None:
        runs.append(1)
        release.wait(10)

    schedule.every(HOUR, job, name="job")
    schedule.start()
    schedule.wake("job")
    wait_until(lambda: runs)
    schedule._scheduler.modify_job("job", next_run_time=datetime.now(UTC))  # due while running
    wait_until(
        lambda: schedule._scheduler.get_job("job").next_run_time > datetime.now(UTC), timeout=10
    )
    release.set()
    assert "maximum number of running instances" not in caplog.text
