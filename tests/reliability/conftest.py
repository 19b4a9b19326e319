"""Fixtures of the reliability scenarios: the report written at the end of the session,
a restartable private broker, and a second database of the same kind. The helpers are
in tests/support/reliability.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.report import ReliabilityReport
from tests.support.databases import fresh_database
from tests.support.mqtt import Broker
from tests.support.reliability import REPORT


# --- the report ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def reliability_report() -> Iterator[ReliabilityReport]:
    yield REPORT
    path = REPORT.write()
    if path:
        print(f"\nreliability report written to {path}")


@pytest.fixture(autouse=True)
def _current_test(request: pytest.FixtureRequest, reliability_report: ReliabilityReport) -> None:
    reliability_report.current_test = request.node.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        REPORT.outcome(item.nodeid, report.passed, report.duration)
    elif report.when in ("setup", "teardown"):
        for figures in REPORT.by_test.get(item.nodeid, []):
            figures.test_s += report.duration
            if report.failed:
                figures.result = "FAIL"


@pytest.fixture
def broker() -> Iterator[Broker]:
    # mosquitto started as root drops to the `mosquitto` user: its persistence directory
    # must be writable by that user (pytest's tmp_path is private to root)
    directory = Path(tempfile.mkdtemp(prefix="cpm-broker-"))
    directory.chmod(0o777)
    instance = Broker(directory)
    instance.start()
    yield instance
    instance.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def twin_database_url(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(kind, request, tmp_path) as url:
        yield url
