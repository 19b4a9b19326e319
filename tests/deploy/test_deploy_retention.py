"""Retention: raw rows older than N days go, roll-ups and younger rows stay (both DBs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, func, insert, select

from services.cli import main
from services.core.models import (
    CoverageRollup,
    DeadLetter,
    DeviceStatusEvent,
    DutyEvent,
    Passage,
    Reading,
)
from services.deploy.retention import purge_raw_rows, retention_cutoff, run_retention

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RAW: tuple[Any, ...] = (Passage, Reading, DutyEvent, DeviceStatusEvent, DeadLetter)


def event(kind: str, n: int, when: datetime) -> dict[str, Any]:
    base = {"checkpoint_id": "cp-001", "ts": when, "received_at": when, "device_ts": when}
    if kind == "passage":
        return base | {"msg_id": f"p{n}", "direction": "in",
                       "kind": "person", "registration": "registered"}  # fmt: skip
    if kind == "reading":
        return base | {"msg_id": f"r{n}", "temp_c": 36.5, "direction": "in"}
    if kind == "duty_event":
        return base | {"msg_id": f"d{n}", "staff_id": "st-001-1",
                       "action": "on"}  # fmt: skip
    if kind == "device_status_event":
        return base | {"state": "online"}
    return {"received_at": when, "topic": "t", "reason": "bad_json", "detail": "x",
            "payload": "{"}  # fmt: skip


def complete(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Keep the columns the table has; fill other required ones with plain values, so
    the test follows the event models as they gain columns."""
    row = {k: v for k, v in row.items() if k in table.c}
    for column in table.c:
        if column.name in row or column.nullable or column.primary_key:
            continue
        if column.default is not None or column.server_default is not None:
            continue
        python_type = column.type.python_type
        filler = {int: 0, float: 0.0, bool: False, str: "x"}.get(python_type)
        row[column.name] = row["ts"] if filler is None and "ts" in row else filler
    return row


def fill(engine: Engine, ages_days: list[float]) -> None:
    with engine.begin() as conn:
        for model in RAW:
            table = model.__table__
            rows = [event(table.name, n, NOW - timedelta(days=age)) for n, age in
                    enumerate(ages_days)]  # fmt: skip
            rows = [complete(table, row) for row in rows]
            conn.execute(insert(table), rows)
        rollups = [
            {"checkpoint_id": "cp-001", "bucket": NOW - timedelta(days=age), "passages": 1}
            for age in ages_days
        ]
        conn.execute(insert(CoverageRollup.__table__), rollups)  # type: ignore[attr-defined]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            model.__table__.name: conn.execute(
                select(func.count()).select_from(model.__table__)
            ).scalar_one()
            for model in (*RAW, CoverageRollup)
        }


def test_cutoff() -> None:
    assert retention_cutoff(NOW, 0) is None
    assert retention_cutoff(NOW, 30) == NOW - timedelta(days=30)


def test_purge_deletes_only_old_raw_rows_and_keeps_rollups(seeded_engine: Engine) -> None:
    fill(seeded_engine, [45, 31, 30.5, 29.9, 1, 0])
    deleted = purge_raw_rows(seeded_engine, NOW - timedelta(days=30), chunk_rows=2)
    assert deleted == {name: 3 for name in (
        "passage", "reading", "duty_event", "device_status_event", "dead_letter")}  # fmt: skip
    assert counts(seeded_engine) == {
        "passage": 3, "reading": 3, "duty_event": 3, "device_status_event": 3,
        "dead_letter": 3, "coverage_rollup": 6,
    }  # fmt: skip
    with seeded_engine.connect() as conn:
        oldest = conn.execute(select(func.min(Passage.__table__.c.ts))).scalar_one()  # type: ignore[attr-defined]
    assert oldest == NOW - timedelta(days=29.9)


def test_retention_off_deletes_nothing(seeded_engine: Engine) -> None:
    fill(seeded_engine, [400])
    assert run_retention(seeded_engine, 0, now=NOW) == {}
    assert counts(seeded_engine)["passage"] == 1


def test_cpmon_retention_command(
    seeded_engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from services.core.settings import get_settings

    now = datetime.now(UTC)
    with seeded_engine.begin() as conn:
        conn.execute(insert(Passage.__table__), [  # type: ignore[attr-defined]
            event("passage", 1, now - timedelta(days=10)),
            event("passage", 2, now - timedelta(hours=1)),
        ])  # fmt: skip
    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_DEMO_MODE", "true")
    monkeypatch.setenv("CPM_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    try:
        assert main(["retention"]) == 0
        assert "1 passage" in capsys.readouterr().out
        assert main(["retention", "--days", "-1"]) == 2
    finally:
        get_settings.cache_clear()
    assert counts(seeded_engine)["passage"] == 1


def test_cpmon_retention_every_hours_runs_on_the_scheduler_until_sigterm(
    seeded_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """`--every-hours` purges at once (first run of its scheduled job) and stops cleanly
    on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    from tests.support import wait_until

    now = datetime.now(UTC)
    with seeded_engine.begin() as conn:
        conn.execute(insert(Passage.__table__), [  # type: ignore[attr-defined]
            event("passage", 1, now - timedelta(days=10)),
            event("passage", 2, now - timedelta(hours=1)),
        ])  # fmt: skip
    env = os.environ | {
        "CPM_DATABASE_URL": database_url,
        "CPM_DEMO_MODE": "true",
        "CPM_RETENTION_DAYS": "7",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "retention", "--every-hours", "24"],
        env=env,
        cwd=tmp_path,
    )
    try:
        assert wait_until(lambda: counts(seeded_engine)["passage"] == 1, timeout=60)
        assert process.poll() is None  # still running: the next purge is a day away
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
