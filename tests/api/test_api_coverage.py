"""Coverage: the arithmetic (pure), roll-ups equal to a recount of raw rows (real
messages through the real ingest, late data included), staffing and uptime from duty
and status intervals, null coverage without passages, local-day buckets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.api import coverage as cov
from services.api.coverage_queries import recount_table, rollup_table
from services.api.routes import coverage as coverage_route
from services.core.demo import DemoCommunity
from services.core.models import Checkpoint, DeviceStatusEvent, DutyEvent, Passage
from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.api import bearer

T0 = datetime(2020, 2, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


# --- pure arithmetic -----------------------------------------------------------------
def test_segments_split_across_hours_exactly() -> None:
    start = cov.epoch(T0)
    adder = cov.SegmentAdder(start, 4)
    adder.add(start + 1800, start + 3 * 3600 + 600)  # 00:30 -> 03:10
    adder.add(start + 100, start + 200)
    out = [0.0] * 4
    adder.into(out)
    assert out == [1900.0, 3600.0, 3600.0, 600.0]


def test_time_where_follows_state_changes() -> None:
    start = cov.epoch(T0)
    adder = cov.SegmentAdder(start, 2)
    events = [(start + 600, ("a", "off")), (start + 900, ("b", "on")), (start + 4000, ("b", "off"))]
    cov.time_where(
        adder,
        start,
        start + 7200,
        frozenset({"a"}),
        events,
        cov.apply_duty,
        lambda on: len(on) >= 1,
    )
    out = [0.0, 0.0]
    adder.into(out)
    assert out == [600.0 + 2700.0, 400.0]


def test_day_buckets_follow_the_local_time_zone() -> None:
    buckets = cov.day_buckets(T0 - timedelta(hours=8), 48, "Asia/Shanghai")
    # 2020-01-31T16:00Z is midnight in Shanghai: two whole local days
    assert [(b.label, b.last_hour - b.first_hour) for b in buckets] == [
        ("2020-02-01", 24),
        ("2020-02-02", 24),
    ]
    buckets = cov.day_buckets(T0, 24, "Asia/Shanghai")
    assert [(b.label, b.last_hour - b.first_hour) for b in buckets] == [
        ("2020-02-01", 16),
        ("2020-02-02", 8),
    ]


def test_no_passages_means_no_coverage_figure() -> None:
    series = cov.HourSeries(start=cov.epoch(T0), hours=1)
    figures = cov.figures(series, 0, 1)
    assert figures["temperature_coverage"] is None
    assert figures["registration_coverage"] is None
    assert figures["staffing_coverage"] is None  # no checkpoint-minutes either
    series.counters[0].update(passages=2, vehicles_in=2, registered=1)
    figures = cov.figures(series, 0, 1)
    assert figures["temperature_coverage"] is None  # vehicles only: no person passages
    assert figures["registration_coverage"] == 0.5


# --- roll-ups == recount, through the real ingest --------------------------------------
@pytest.fixture
def ingest(seeded_engine: Engine, make_settings: Any, mqtt_url: str) -> Iterator[IngestService]:
    service = IngestService(make_settings(ingest_session_expiry_s=60), seeded_engine)
    service.start()
    yield service
    service.stop()


def test_rollups_equal_a_recount_of_raw_rows_including_late_data(
    ingest: IngestService,
    mqtt_url: str,
    seeded_engine: Engine,
    small_community: DemoCommunity,
    client: TestClient,
    api_keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    prefix = ingest.settings.topic_prefix
    people = small_community.people
    checkpoints = ["cp-001", "cp-002", "cp-005", "cp-040"]
    messages: list[tuple[str, dict[str, Any]]] = []
    for n in range(400):
        # spread over the last 30 hours; the file order is shuffled, so many hours get
        # data after later hours already did (late data)
        ts = now - timedelta(seconds=rng.randint(60, 30 * 3600))
        cp = rng.choice(checkpoints)
        direction = rng.choice(["in", "out"])
        if rng.random() < 0.15:
            plate = rng.choice(small_community.vehicles).plate if rng.random() < 0.7 else "粤Z0000"
            body = {
                "msg_id": f"v{n}",
                "ts": ts.isoformat(),
                "direction": direction,
                "kind": "vehicle",
                "plate": plate,
            }
            messages.append((f"{prefix}/cp/{cp}/entry", body))
            continue
        person = rng.choice(people)
        body = {
            "msg_id": f"e{n}",
            "ts": ts.isoformat(),
            "direction": direction,
            "kind": "person",
            "id_number": person.id_number,
            "qr_pass": person.pass_code if rng.random() < 0.9 else "QR-unknown",
        }
        if rng.random() < 0.4:
            body["temp_c"] = rng.choice([36.5, 36.8, 37.6])
        messages.append((f"{prefix}/cp/{cp}/entry", body))
        if "temp_c" not in body and rng.random() < 0.6:  # a handheld reading nearby
            reading = {
                "msg_id": f"r{n}",
                "ts": (ts + timedelta(seconds=rng.randint(-10, 10))).isoformat(),
                "temp_c": rng.choice([36.4, 36.9, 37.8, 50.0]),
                "direction": direction,
            }
            messages.append((f"{prefix}/cp/{cp}/reading", reading))
    rng.shuffle(messages)
    device = Publisher(mqtt_url)
    try:
        for topic, body in messages:
            device.publish(topic, body)
    finally:
        device.close()
    wait_until(lambda: ingest.stats.received >= len(messages), timeout=60)
    assert ingest.wait_idle()

    start = cov.floor_hour(now - timedelta(hours=31))
    end = cov.ceil_hour(now + timedelta(seconds=1))
    with seeded_engine.connect() as conn:
        rolled = rollup_table(conn, start, end)
        recounted = recount_table(conn, start, end)
    assert sum(c["passages"] for c in rolled.values()) == len(
        [m for m in messages if "/entry" in m[0]]
    )
    assert rolled == recounted

    # one clock for both answers: the current hour's minutes run up to "now"
    asked_at = datetime.now(UTC)
    monkeypatch.setattr(coverage_route, "utcnow", lambda: asked_at)
    admin = bearer(api_keys["admin"])
    params = {"from": start.isoformat(), "to": end.isoformat(), "bucket": "hour"}
    fast = client.get("/api/v1/metrics/coverage", params=params, headers=admin).json()
    slow = client.get(
        "/api/v1/metrics/coverage", params={**params, "source": "recount"}, headers=admin
    ).json()
    assert fast["source"] == "rollup" and slow["source"] == "recount"
    assert fast["buckets"] == slow["buckets"] and fast["total"] == slow["total"]
    total = fast["total"]
    assert 0 < total["temperature_coverage"] < 1 and 0 < total["registration_coverage"] < 1
    assert total["unregistered"] > 0 and total["fevers"] > 0 and total["implausible_readings"] > 0
    assert any(b["temperature_coverage"] is None for b in fast["buckets"])  # quiet hours
    # a site filter is the sum of its checkpoints
    site = client.get(
        "/api/v1/metrics/coverage", params={**params, "checkpoint_id": "cp-001"}, headers=admin
    ).json()
    assert 0 < site["total"]["passages"]["total"] < total["passages"]["total"]
    assert_problem_status = client.get(
        "/api/v1/metrics/coverage",
        params={**params, "source": "recount"},
        headers=bearer(api_keys["viewer"]),
    ).status_code
    assert assert_problem_status == 403


# --- staffing and uptime ---------------------------------------------------------------
def _insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(model.__table__), rows)


def duty(cp: str, staff: str, action: str, at: datetime, n: int) -> dict[str, Any]:
    return {
        "checkpoint_id": cp,
        "msg_id": f"d{n}",
        "ts": at,
        "device_ts": at,
        "received_at": at,
        "clock_adjusted": False,
        "staff_id": staff,
        "action": action,
    }


def status(cp: str, state: str, at: datetime) -> dict[str, Any]:
    return {"checkpoint_id": cp, "ts": at, "device_ts": at, "received_at": at, "state": state}


def test_staffing_and_uptime_come_from_intervals_including_state_before_the_window(
    seeded_engine: Engine,
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    h = timedelta(hours=1)
    # cp-001 needs 2 staff (demo: the residential north gate); cp-002 needs 1
    _insert(
        seeded_engine,
        DutyEvent,
        [
            duty("cp-001", "a", "on", T0 - 5 * h, 1),  # on since before the window
            duty("cp-001", "b", "on", T0 + timedelta(minutes=30), 2),  # 2 on from 00:30
            duty("cp-001", "a", "off", T0 + timedelta(minutes=90), 3),  # 1 on from 01:30
            duty("cp-002", "c", "on", T0 - 2 * h, 4),
            duty("cp-002", "c", "off", T0 - h, 5),  # off before the window
            duty("cp-002", "c", "on", T0 + timedelta(minutes=150), 6),  # on 02:30 ->
        ],
    )
    _insert(
        seeded_engine,
        DeviceStatusEvent,
        [
            status("cp-001", "online", T0 - 3 * h),
            status("cp-001", "offline", T0 + timedelta(minutes=45)),
            status("cp-001", "online", T0 + timedelta(minutes=60)),
            status("cp-002", "offline", T0 - h),
        ],
    )
    site = client.get(
        "/api/v1/metrics/coverage",
        headers=bearer(api_keys["viewer"]),
        params={"from": T0.isoformat(), "to": (T0 + 3 * h).isoformat(), "site_id": "res-01"},
    ).json()
    assert site["checkpoints"] == 5
    one = client.get(
        "/api/v1/metrics/coverage",
        headers=bearer(api_keys["viewer"]),
        params={"from": T0.isoformat(), "to": (T0 + 3 * h).isoformat(), "checkpoint_id": "cp-001"},
    ).json()
    staffed = [b["staffed_minutes"] for b in one["buckets"]]
    online = [b["online_minutes"] for b in one["buckets"]]
    assert staffed == [30.0, 30.0, 0.0]  # two on duty only from 00:30 to 01:30
    assert online == [45.0, 60.0, 60.0]
    assert one["total"]["staffing_coverage"] == round(60 / 180, 6)
    assert one["total"]["device_uptime"] == round(165 / 180, 6)
    assert one["total"]["temperature_coverage"] is None  # no passages at all
    two = client.get(
        "/api/v1/metrics/coverage",
        headers=bearer(api_keys["viewer"]),
        params={"from": T0.isoformat(), "to": (T0 + 3 * h).isoformat(), "checkpoint_id": "cp-002"},
    ).json()
    assert [b["staffed_minutes"] for b in two["buckets"]] == [0.0, 0.0, 30.0]
    assert two["total"]["device_uptime"] == 0.0
    # the site's figures add its checkpoints up (3 more never staffed nor online)
    assert site["total"]["staffed_minutes"] == 90.0
    assert site["total"]["checkpoint_minutes"] == 5 * 180.0
    day = client.get(
        "/api/v1/metrics/coverage",
        headers=bearer(api_keys["viewer"]),
        params={
            "from": T0.isoformat(),
            "to": (T0 + 3 * h).isoformat(),
            "checkpoint_id": "cp-001",
            "bucket": "day",
        },
    ).json()
    assert [b["label"] for b in day["buckets"]] == ["2020-02-01"]
    assert day["buckets"][0]["staffed_minutes"] == 60.0


def test_held_time_counts_only_the_in_service_period() -> None:
    start = cov.epoch(T0)
    always_on = ("online", [], lambda s: s == "online")
    held = cov.held_time(
        start,
        2,
        start + 7200,
        [(*always_on, (start + 1800, None)), (*always_on, (None, start + 4000))],
        cov.apply_status,
    )
    # the first from 00:30 on, the second until 01:06:40, closed there
    assert held.seconds(start + 7200) == [1800.0 + 3600.0, 3600.0 + 400.0]
    assert held.open_since == (start + 1800,)
    ahead = cov.held_time(
        start, 2, start + 3600, [(*always_on, (None, start + 5400))], cov.apply_status
    )
    assert not ahead.extendable  # it leaves service later: cannot simply run on
    series = cov.HourSeries(start=start, hours=3)
    cov.add_checkpoint_time(
        series, [(start + 1800, None), (None, start + 4000), cov.ALWAYS], start + 9000
    )
    assert series.checkpoint_s == [1800.0 + 3600 + 3600, 3600.0 + 400 + 3600, 1800.0 + 1800]


def test_minutes_before_commissioning_and_after_decommissioning_do_not_count(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str]
) -> None:
    h = timedelta(hours=1)
    with seeded_engine.begin() as conn:
        table = Checkpoint.__table__  # type: ignore[attr-defined]
        conn.execute(
            table.update().where(table.c.id == "cp-001").values(commissioned_at=T0 + 2 * h)
        )
        conn.execute(table.update().where(table.c.id == "cp-002").values(decommissioned_at=T0 + h))
    _insert(
        seeded_engine,
        DutyEvent,
        [duty("cp-001", "a", "on", T0, 1), duty("cp-001", "b", "on", T0, 2)],
    )
    _insert(
        seeded_engine,
        DeviceStatusEvent,
        [status("cp-001", "online", T0), status("cp-002", "online", T0 - h)],
    )

    def report(checkpoint_id: str) -> dict[str, Any]:
        return client.get(
            "/api/v1/metrics/coverage",
            headers=bearer(api_keys["viewer"]),
            params={
                "from": T0.isoformat(),
                "to": (T0 + 3 * h).isoformat(),
                "checkpoint_id": checkpoint_id,
            },
        ).json()

    fresh = report("cp-001")  # in service from 02:00 only, staffed and online all along
    assert [b["checkpoint_minutes"] for b in fresh["buckets"]] == [0.0, 0.0, 60.0]
    assert fresh["buckets"][0]["staffing_coverage"] is None  # not 0 %: not in service
    assert fresh["total"]["staffing_coverage"] == 1.0
    assert fresh["total"]["device_uptime"] == 1.0
    gone = report("cp-002")  # out of service from 01:00
    assert [b["online_minutes"] for b in gone["buckets"]] == [60.0, 0.0, 0.0]
    assert gone["total"]["device_uptime"] == 1.0
    assert gone["total"]["checkpoint_minutes"] == 60.0


def test_settled_hours_are_served_from_memory_with_the_same_figures(
    seeded_engine: Engine, api_app: Any, client: TestClient, api_keys: dict[str, str]
) -> None:
    from collections import Counter

    from services.ingest.state import add_rollups

    rows, rollups = [], {}
    for n in range(200):  # passages in 2020: long settled (older than max_event_age_h)
        ts = T0 + timedelta(minutes=7 * n)
        screened = n % 3 != 0
        rows.append(
            {
                "checkpoint_id": f"cp-00{1 + n % 3}",
                "msg_id": f"s{n}",
                "ts": ts,
                "device_ts": ts,
                "received_at": ts,
                "clock_adjusted": False,
                "direction": "in",
                "kind": "person",
                "registration": "registered",
                "quarantined": False,
                "screened": screened,
            }
        )
        key = (rows[-1]["checkpoint_id"], cov.floor_hour(ts))
        counts = rollups.setdefault(key, Counter())
        counts.update(passages=1, persons_in=1, registered=1, screened_persons=int(screened))
    with seeded_engine.begin() as conn:
        conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
        add_rollups(conn, rollups)
    admin = bearer(api_keys["admin"])
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    cache = api_app.state.settled_hours
    first = client.get("/api/v1/metrics/coverage", params=params, headers=admin).json()
    second = client.get("/api/v1/metrics/coverage", params=params, headers=admin).json()
    recount = client.get(
        "/api/v1/metrics/coverage", params={**params, "source": "recount"}, headers=admin
    ).json()
    assert (cache.misses, cache.hits) == (1, 1)
    assert first["buckets"] == second["buckets"] == recount["buckets"]
    assert first["total"]["passages"]["total"] == 200
    assert first["total"]["temperature_coverage"] == round(133 / 200, 6)
