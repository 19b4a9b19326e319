"""What the coverage API keeps between requests (services/api/coverage_cache.py): the
staffed / online time of the unsettled tail while the duty and status events are proven
unchanged, the JSON of settled buckets; and that late data still shows up in the very
next request, on both engines. The clock is pinned, so answers compare exactly."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.api import coverage as cov
from services.api.coverage_cache import SettledHours, scope_key, settled_before
from services.api.coverage_queries import Scope
from services.api.routes import coverage as route
from services.api.schemas import CoverageReport
from services.core.models import DeviceStatusEvent, DutyEvent, Passage
from services.ingest.state import add_rollups
from tests.support.api import bearer

NOW = datetime(2020, 3, 1, 10, 20, tzinfo=UTC)
H = timedelta(hours=1)


# --- pure parts ------------------------------------------------------------------------
def test_held_time_runs_open_stretches_on_to_a_later_instant() -> None:
    start = cov.epoch(NOW.replace(minute=0))
    events = [(start + 600, "offline"), (start + 1200, "online")]
    held = cov.held_time(
        start,
        2,
        start + 1800,
        [("online", events, lambda s: s == "online", cov.ALWAYS)],
        cov.apply_status,
    )
    assert held.extendable and held.open_since == (start + 1200,)
    assert held.seconds(start + 1800) == [1200.0, 0.0]
    assert held.seconds(start + 3600 + 60) == [3000.0, 60.0]
    with pytest.raises(ValueError):
        held.seconds(start + 1700)  # computed for a later instant


def test_held_time_with_an_event_after_its_instant_cannot_be_extended() -> None:
    start = cov.epoch(NOW.replace(minute=0))
    events = [(start + 2400, "offline")]  # a device clock ahead of ours
    held = cov.held_time(
        start,
        1,
        start + 1800,
        [("online", events, lambda s: s == "online", cov.ALWAYS)],
        cov.apply_status,
    )
    assert not held.extendable
    assert held.seconds(start + 1800) == [1800.0]
    with pytest.raises(ValueError):
        held.seconds(start + 3000)


def test_held_time_of_a_window_not_yet_begun_cannot_be_extended() -> None:
    start = cov.epoch(NOW.replace(minute=0))
    held = cov.held_time(
        start, 1, start, [("online", [], lambda s: s == "online", cov.ALWAYS)], cov.apply_status
    )
    assert not held.extendable and held.seconds(start) == [0.0]


def test_spliced_report_is_what_pydantic_would_serialise() -> None:
    start = NOW.replace(minute=0)
    series = cov.HourSeries(start=cov.epoch(start), hours=3)
    series.counters[0].update(passages=3, persons_in=2, vehicles_out=1, registered=2)
    series.counters[2].update(passages=1, persons_out=1, screened_persons=1, fevers=1)
    series.staffed_s[:] = [1800.0, 3600.0, 0.0]
    series.checkpoint_s[:] = [3600.0, 3600.0, 3600.0]
    series.alerts_opened[1] = 2
    buckets = cov.hour_buckets(start, 3)
    head = {
        "from": start,
        "to": start + 3 * H,
        "bucket": "hour",
        "timezone": "Asia/Shanghai",
        "site_id": None,
        "checkpoint_id": "cp-001",
        "checkpoints": 1,
        "source": "rollup",
    }
    total = cov.figures(series, 0, 3)
    figures = cov.bucket_figures(series, buckets)
    whole = CoverageReport.model_validate({**head, "total": total, "buckets": figures})
    spliced = route.report_json(head, total, [route.bucket_json(f) for f in figures])
    assert spliced == whole.model_dump_json(by_alias=True).encode()


def test_remembered_buckets_are_labelled_in_utc_whatever_zone_asked() -> None:
    start = NOW.replace(minute=0)
    local = start.astimezone(ZoneInfo("Asia/Shanghai"))  # the same instant
    assert cov.hour_buckets(local, 1)[0].label == "2020-03-01T10:00:00Z"
    assert cov.hour_buckets(start, 1) == cov.hour_buckets(local, 1)
    assert cov.day_buckets(local, 24, "Asia/Shanghai") == cov.day_buckets(
        start, 24, "Asia/Shanghai"
    )


def test_scope_keys_tell_an_empty_site_from_the_whole_community() -> None:
    assert scope_key(Scope({}, None, ())) != scope_key(Scope({}, []))
    assert scope_key(Scope({"cp-001": 1}, ["cp-001"])) != scope_key(
        Scope({"cp-001": 2}, ["cp-001"])
    )


# --- through the API -------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    pinned = Clock(NOW)
    monkeypatch.setattr(route, "utcnow", pinned)
    return pinned


def duty(cp: str, staff: str, action: str, at: datetime, row_id: int) -> dict[str, Any]:
    return {
        "id": row_id,
        "checkpoint_id": cp,
        "msg_id": f"d{row_id}",
        "ts": at,
        "device_ts": at,
        "received_at": at,
        "clock_adjusted": False,
        "staff_id": staff,
        "action": action,
    }


def status(cp: str, state: str, at: datetime, row_id: int) -> dict[str, Any]:
    return {
        "id": row_id,
        "checkpoint_id": cp,
        "ts": at,
        "device_ts": at,
        "received_at": at,
        "state": state,
    }


def insert_rows(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model.__table__), rows)


def both(client: TestClient, key: str, params: dict[str, str]) -> dict[str, Any]:
    """The answer from the roll-ups and memory, checked against a recount of raw rows."""
    fast = client.get("/api/v1/metrics/coverage", params=params, headers=bearer(key))
    slow = client.get(
        "/api/v1/metrics/coverage", params={**params, "source": "recount"}, headers=bearer(key)
    )
    assert fast.status_code == slow.status_code == 200, fast.text
    fast_body, slow_body = fast.json(), slow.json()
    assert fast_body["buckets"] == slow_body["buckets"]
    assert fast_body["total"] == slow_body["total"]
    return dict(fast_body)


def test_tail_minutes_are_kept_while_unchanged_and_late_events_show_up_next_request(
    seeded_engine: Engine,
    api_app: FastAPI,
    client: TestClient,
    api_keys: dict[str, str],
    clock: Clock,
) -> None:
    # cp-002 needs one member of staff: "c" from 4 days ago (settled) to 30 h ago, then
    # again from 2 h ago, still on duty
    insert_rows(
        seeded_engine,
        DutyEvent,
        [
            duty("cp-002", "c", "on", NOW - 96 * H, 1000),
            duty("cp-002", "c", "off", NOW - 30 * H, 1001),
            duty("cp-002", "c", "on", NOW - 2 * H, 1002),
        ],
    )
    insert_rows(seeded_engine, DeviceStatusEvent, [status("cp-002", "online", NOW - 130 * H, 1000)])
    memory: SettledHours = api_app.state.settled_hours
    params = {
        "from": (NOW - 5 * 24 * H).isoformat(),
        "to": (NOW + H).isoformat(),
        "checkpoint_id": "cp-002",
    }
    admin = api_keys["admin"]
    first = both(client, admin, params)["total"]
    assert memory.held_misses == 1
    assert first["staffed_minutes"] == (96 - 30 + 2) * 60.0
    assert first["online_minutes"] == first["checkpoint_minutes"]

    clock.now = NOW + timedelta(minutes=10)  # nothing new: kept, open stretches run on
    second = both(client, admin, params)["total"]
    assert (memory.held_hits, memory.held_misses) == (1, 1)
    assert second["staffed_minutes"] == first["staffed_minutes"] + 10
    assert second["online_minutes"] == first["online_minutes"] + 10

    # a late event whose transaction took its id before the newest row's but committed
    # after it: the count of rows changes where the highest id would not
    insert_rows(
        seeded_engine,
        DutyEvent,
        [
            duty("cp-002", "d", "on", NOW - 28 * H, 500),
            duty("cp-002", "d", "off", NOW - 26 * H, 501),
        ],
    )
    third = both(client, admin, params)["total"]
    assert memory.held_misses == 2
    assert third["staffed_minutes"] == second["staffed_minutes"] + 120

    insert_rows(seeded_engine, DeviceStatusEvent, [status("cp-002", "offline", NOW - 5 * H, 1001)])
    fourth = both(client, admin, params)["total"]
    assert memory.held_misses == 3
    assert fourth["online_minutes"] == third["online_minutes"] - (5 * 60 + 10)


def test_a_late_event_before_a_recent_window_changes_its_starting_state(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str], clock: Clock
) -> None:
    """A window inside the unsettled tail starts from a state that late events (stamped
    before the window, within the last 72 h) can still change."""
    insert_rows(seeded_engine, DeviceStatusEvent, [status("cp-001", "online", NOW - 60 * H, 1000)])
    params = {"from": (NOW - 24 * H).isoformat(), "checkpoint_id": "cp-001"}
    params["to"] = (NOW + H).isoformat()
    before = both(client, api_keys["admin"], params)["total"]
    assert before["device_uptime"] == 1.0
    insert_rows(seeded_engine, DeviceStatusEvent, [status("cp-001", "offline", NOW - 40 * H, 1001)])
    after = both(client, api_keys["admin"], params)["total"]
    assert after["online_minutes"] == 0.0


def test_late_passages_in_the_tail_show_up_and_settled_buckets_are_kept(
    seeded_engine: Engine,
    api_app: FastAPI,
    client: TestClient,
    api_keys: dict[str, str],
    clock: Clock,
) -> None:
    def passage(n: int, at: datetime) -> dict[str, Any]:
        return {
            "checkpoint_id": "cp-003",
            "msg_id": f"p{n}",
            "ts": at,
            "device_ts": at,
            "received_at": at,
            "clock_adjusted": False,
            "direction": "in",
            "kind": "person",
            "registration": "registered",
            "quarantined": False,
            "screened": True,
        }

    def store(rows: list[dict[str, Any]]) -> None:
        counts: dict[tuple[str, datetime], Counter[str]] = {}
        for row in rows:
            key = (row["checkpoint_id"], cov.floor_hour(row["ts"]))
            counts.setdefault(key, Counter()).update(
                passages=1, persons_in=1, registered=1, screened_persons=1
            )
        with seeded_engine.begin() as conn:  # as ingest does: rows and roll-ups together
            conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
            add_rollups(conn, counts)

    store([passage(n, NOW - timedelta(hours=100, minutes=7 * n)) for n in range(20)])
    admin = api_keys["admin"]
    params = {"from": (NOW - 6 * 24 * H).isoformat(), "to": (NOW + H).isoformat()}
    late = 0
    for bucket in ("hour", "day"):
        first = both(client, admin, {**params, "bucket": bucket})
        assert first["total"]["passages"]["total"] == 20 + late
        # late passages, stamped 50 h ago: the roll-ups of the tail are read every time
        store([passage(100 * (late + 1) + n, NOW - timedelta(hours=50 + n)) for n in range(3)])
        late += 3
        again = both(client, admin, {**params, "bucket": bucket})
        assert again["total"]["passages"]["total"] == 20 + late
        assert again["buckets"][0] == first["buckets"][0]
    # kept: the JSON of every bucket made only of settled hours, by hour and by day
    start, end = cov.floor_hour(NOW - 6 * 24 * H), cov.ceil_hour(NOW + H)
    since = settled_before(NOW, api_app.state.settings.max_event_age_h)
    hours = int((end - start).total_seconds()) // 3600
    settled_days = [b for b in cov.day_buckets(start, hours, "Asia/Shanghai") if b.end <= since]
    assert 0 < len(settled_days) < 6
    memory: SettledHours = api_app.state.settled_hours
    assert memory.buckets_kept == (since - start) // H + len(settled_days)
