"""The simulator's pure parts: plan, schedule, incidents, registration, manifest counting.
No broker and no database."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.simulator.manifest import ManifestBuilder
from devices.simulator.network import ANY_DEVICE, Credentials, read_credentials
from devices.simulator.params import IncidentRates, SimulationParams, parse_duration
from devices.simulator.plan import Plan
from devices.simulator.population import Population, Shown
from devices.simulator.scenarios import SCENARIOS, scenario_params
from devices.simulator.staffing import DutyRoster, shift_staff
from devices.simulator.timeline import Item, Op
from services.core.demo import DemoCommunity
from services.core.enums import Registration
from services.core.protocol import ReadingMessage, encode, parse_message

START = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # midnight in Shanghai
BUSY = IncidentRates(
    visitor=0.05,
    no_pass=0.03,
    unknown_pass=0.03,
    invalid_id=0.03,
    expired_pass=0.03,
    revoked_pass=0.03,
    borrowed_pass=0.03,
    fever=0.03,
    unscreened=0.03,
    implausible_reading=0.05,
    unlinked_reading=0.5,
    duplicate=0.03,
    quarantine_attempt=2.0,
    device_drop=0.5,
    clock_drift=0.5,
    staffing_gap=0.2,
)


def make_plan(community: DemoCommunity, **values: Any) -> Plan:
    defaults: dict[str, Any] = {
        "seed": 5,
        "start": START,
        "duration_s": 6 * 3600,
        "passages_per_person_day": 12.0,
        "rates": BUSY,
    }
    params = SimulationParams(**{**defaults, **values})
    return Plan(params, community, START.timestamp())


@pytest.fixture(scope="module")
def busy_items(small_community: DemoCommunity) -> list[Item]:
    return list(make_plan(small_community).items())


def wire(items: list[Item]) -> list[tuple[str, str, bytes]]:
    return [(i.checkpoint_id, str(i.op), encode(i.message) if i.message else b"") for i in items]


# --- determinism -------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_messages(small_community: DemoCommunity) -> None:
    first = wire(list(make_plan(small_community, duration_s=3 * 3600).items()))
    second = wire(list(make_plan(small_community, duration_s=3 * 3600).items()))
    other = wire(list(make_plan(small_community, duration_s=3 * 3600, seed=6).items()))
    assert first == second
    assert first != other


def test_every_message_is_valid_protocol_and_ids_are_unique(busy_items: list[Item]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in busy_items:
        if item.message is None:
            continue
        parsed = parse_message(item.kind, encode(item.message))
        msg_id = getattr(parsed, "msg_id", None)
        if msg_id is not None:
            assert (item.checkpoint_id, msg_id) not in seen
            seen.add((item.checkpoint_id, msg_id))


def test_items_are_in_time_order_except_replayed_backlog(busy_items: list[Item]) -> None:
    last = 0.0
    for item in busy_items:
        if not item.backlog:
            assert item.t >= last
            last = item.t


# --- registration precedence -------------------------------------------------------------
def test_expected_registration_follows_the_ingest_precedence(
    small_community: DemoCommunity,
) -> None:
    population = Population(small_community, 1)
    at = START
    valid = population.all_valid[0]
    other = population.all_valid[1]
    expired = population.expired[0]
    revoked = population.revoked[0]
    cases = {
        Registration.REGISTERED: Shown(valid.id_number, valid.pass_code),
        Registration.INVALID_ID: Shown(valid.id_number[:-1] + "Z", valid.pass_code),
        Registration.UNKNOWN_PERSON: Shown(population.visitors[0], valid.pass_code),
        Registration.NO_PASS: Shown(valid.id_number),
        Registration.UNKNOWN_PASS: Shown(valid.id_number, "QR-NOBODY"),
        Registration.PASS_MISMATCH: Shown(valid.id_number, other.pass_code),
        Registration.REVOKED_PASS: Shown(revoked.id_number, revoked.pass_code),
        Registration.EXPIRED_PASS: Shown(expired.id_number, expired.pass_code),
    }
    for expected, shown in cases.items():
        assert population.expected_registration("person", shown, at) == expected
    assert population.expected_registration("person", Shown(None, valid.pass_code), at) == (
        Registration.INVALID_ID
    )
    plate = small_community.vehicles[0].plate
    assert population.expected_registration("vehicle", Shown(plate=plate), at) == (
        Registration.REGISTERED
    )
    stranger = Shown(plate=population.unknown_plates[0])
    assert population.expected_registration("vehicle", stranger, at) == (
        Registration.UNREGISTERED_VEHICLE
    )


def test_visitors_and_unknown_plates_are_not_in_the_registry(
    small_community: DemoCommunity,
) -> None:
    population = Population(small_community, 3)
    registered = {p.id_number for p in small_community.people}
    assert not registered & set(population.visitors)
    assert not {v.plate for v in small_community.vehicles} & set(population.unknown_plates)


# --- incidents ---------------------------------------------------------------------------
def test_a_busy_plan_injects_every_kind_of_incident(busy_items: list[Item]) -> None:
    incidents = Counter(x for i in busy_items if i.passage for x in i.passage.incidents)
    for name in (
        "visitor",
        "no_pass",
        "unknown_pass",
        "invalid_id",
        "expired_pass",
        "revoked_pass",
        "borrowed_pass",
        "fever",
        "unscreened",
        "implausible_reading",
        "quarantine_attempt",
    ):
        assert incidents[name] > 0, name
    assert any(i.duplicate for i in busy_items)
    assert any(i.op is Op.DROP for i in busy_items)
    assert any(i.drift_s for i in busy_items)
    registrations = Counter(i.passage.registration for i in busy_items if i.passage)
    assert set(registrations) == set(Registration)


def test_incident_passages_get_the_status_they_were_made_for(busy_items: list[Item]) -> None:
    for item in busy_items:
        p = item.passage
        if p is None:
            continue
        if "borrowed_pass" in p.incidents:
            assert p.registration is Registration.PASS_MISMATCH
        for name in ("no_pass", "unknown_pass", "invalid_id", "expired_pass", "revoked_pass"):
            if name in p.incidents:
                assert p.registration == name
        if "visitor" in p.incidents:
            assert p.registration is Registration.UNKNOWN_PERSON
        if "quarantine_attempt" in p.incidents:
            assert p.quarantined and p.direction == "out"


def test_fevers_and_faulty_readings_have_the_right_temperatures(busy_items: list[Item]) -> None:
    for item in busy_items:
        if item.reading is not None:
            assert isinstance(item.message, ReadingMessage)
            temp = item.message.temp_c
            assert item.reading.implausible == (not 30 <= temp <= 45)
            assert item.reading.fever == (30 <= temp <= 45 and temp >= 37.3)
            if item.reading.implausible:
                assert item.reading.linked  # a faulty reading never screens by time
        if item.passage is not None and "fever" in item.passage.incidents:
            entry_temp = getattr(item.message, "temp_c", None)
            assert entry_temp is None or entry_temp >= 37.5


def test_unlinked_readings_match_exactly_one_passage_within_the_window(
    busy_items: list[Item],
) -> None:
    """Ingest pairs a reading without entry_msg_id with a person passage at the same
    checkpoint and direction within ±30 s: the plan must leave exactly one candidate."""
    entries = [i for i in busy_items if i.kind == "entry" and i.passage is not None]
    unlinked = [i for i in busy_items if i.reading is not None and not i.reading.linked]
    assert len(unlinked) > 20
    for reading in unlinked:
        near = [
            e
            for e in entries
            if e.passage.kind == "person"  # type: ignore[union-attr]
            and e.checkpoint_id == reading.checkpoint_id
            and e.message.direction == reading.message.direction  # type: ignore[union-attr]
            and abs(e.t - reading.t) <= 30
        ]
        assert len(near) == 1
        assert near[0].passage.screening == "time_window"  # type: ignore[union-attr]
        assert not reading.drift_s


def test_drifting_clocks_and_backlogs_are_marked(busy_items: list[Item]) -> None:
    drifted = [i for i in busy_items if i.drift_s]
    assert {i.kind for i in drifted} <= {"entry", "reading", "heartbeat"}
    assert all(360 <= i.drift_s <= 1200 for i in drifted)


# --- device windows: drops, outages, backlog ---------------------------------------------
def test_an_outage_holds_messages_back_and_replays_them_in_order(
    small_community: DemoCommunity,
) -> None:
    params = scenario_params(
        "broker-outage", seed=2, start=START, duration_s=4 * 3600, passages_per_person_day=30.0
    )
    items = list(Plan(params, small_community, START.timestamp()).items())
    outage = params.outages[0]
    t0, t1 = START.timestamp() + outage.at_s, START.timestamp() + outage.at_s + outage.length_s
    disconnects = [i for i in items if i.op is Op.DISCONNECT and i.t == t0]
    assert len(disconnects) == len(small_community.checkpoints)
    backlog = [i for i in items if i.backlog]
    assert backlog and all(t0 <= i.t < t1 for i in backlog)
    assert not any(i.kind == "heartbeat" for i in backlog)  # liveness is not replayed
    for cp in small_community.checkpoints:
        mine = [i for i in items if i.checkpoint_id == cp.id]
        reconnect = next(n for n, i in enumerate(mine) if i.op is Op.CONNECT and i.t == t1)
        held = [i for i in mine if i.backlog]
        assert mine[reconnect + 1].kind == "status"
        assert mine[reconnect + 2].message.backlog == len(held)  # type: ignore[union-attr]
        assert mine[reconnect + 3 : reconnect + 3 + len(held)] == held
        assert [i.t for i in held] == sorted(i.t for i in held)


def test_device_windows_record_when_the_device_was_last_heard(
    small_community: DemoCommunity,
) -> None:
    """An outage is noticed as silence from the device's last message: the manifest
    says when that was, for every drop and outage."""
    params = scenario_params(
        "broker-outage",
        seed=3,
        start=START,
        duration_s=4 * 3600,
        rates=replace(BUSY, device_drop=4.0),
    )
    plan = Plan(params, small_community, START.timestamp())
    builder = ManifestBuilder(plan, {})
    items = list(plan.items())
    for item in items:
        builder.add(item)
    manifest = json.loads(json.dumps(builder.build()))
    kinds: Counter[str] = Counter()
    for cp_id, counts in manifest["checkpoints"].items():
        for window in counts["device_windows"]:
            if window["kind"] == "drift":
                assert "last_message" not in window
                continue
            kinds[window["kind"]] += 1
            start = datetime.fromisoformat(window["start"]).timestamp()
            before = next(
                n
                for n, i in enumerate(items)
                if i.checkpoint_id == cp_id
                and abs(i.t - start) < 1e-3  # microseconds in the manifest
                and i.op in (Op.DROP, Op.DISCONNECT)
            )
            sent = [
                i.t
                for i in items[:before]
                if i.checkpoint_id == cp_id and i.op is Op.PUBLISH and not i.backlog
            ]
            heard = datetime.fromisoformat(window["last_message"]).timestamp()
            assert heard == pytest.approx(max(sent), abs=1e-3)
            assert start - params.heartbeat_s <= heard <= start  # heartbeats keep it recent
    assert kinds["outage"] == len(small_community.checkpoints) and kinds["drop"] > 5


def test_every_device_is_back_before_the_end_and_says_goodbye(busy_items: list[Item]) -> None:
    last_op: dict[str, Op] = {}
    for item in busy_items:
        if item.op is not Op.PUBLISH:
            last_op[item.checkpoint_id] = item.op
    assert set(last_op.values()) == {Op.DISCONNECT}
    finals = [i for i in busy_items[-204:] if i.kind == "status"]
    assert all(i.message.state == "offline" for i in finals)  # type: ignore[union-attr]


# --- staffing ----------------------------------------------------------------------------
def test_shift_staff_are_the_demo_communitys_ids(small_community: DemoCommunity) -> None:
    staff = {s.id for s in small_community.staff}
    for cp in small_community.checkpoints:
        for shift in range(3):
            assert set(shift_staff(cp, shift)) <= staff


def test_a_roster_without_gaps_covers_the_whole_run(small_community: DemoCommunity) -> None:
    import random

    start = START.timestamp()
    for cp in small_community.checkpoints[:10]:
        roster = DutyRoster.plan(
            cp, start, start + 2 * 86_400, "Asia/Shanghai", random.Random(1), gap_rate=0.0
        )
        assert roster.gaps() == []
        for t in range(int(start), int(start + 2 * 86_400), 900):
            assert len(roster.on_duty(t)) >= max(cp.min_staff, 1)


def test_gaps_agree_with_a_brute_force_count(small_community: DemoCommunity) -> None:
    import random

    start = START.timestamp()
    end = start + 86_400
    for cp in small_community.checkpoints[:8]:
        roster = DutyRoster.plan(
            cp, start, end, "Asia/Shanghai", random.Random(cp.id), gap_rate=0.7
        )
        roster.walk_out(start + 5000, start + 7000)
        gaps = roster.gaps()
        assert any(g.start <= start + 5000 and (g.end or end) >= start + 7000 for g in gaps)
        need = max(cp.min_staff, 1)
        on: set[str] = set()
        changes = roster.changes()
        for t in range(int(start) + 1, int(end), 37):
            while changes and changes[0].t <= t:
                change = changes.pop(0)
                (on.add if change.action == "on" else on.discard)(change.staff_id)
            in_gap = any(g.start <= t < (g.end or end) for g in gaps)
            assert in_gap == (len(on) < need), (cp.id, t)


def test_the_staffing_gap_scenario_opens_four_long_gaps(small_community: DemoCommunity) -> None:
    params = scenario_params("staffing-gap", seed=4, start=START, duration_s=8 * 3600)
    params = replace(params, rates=replace(params.rates, staffing_gap=0.0))
    plan = Plan(params, small_community, START.timestamp())
    builder = ManifestBuilder(plan, {})
    for item in plan.items():
        builder.add(item)
    manifest = builder.build()
    gaps = [g for cp in manifest["checkpoints"].values() for g in cp["staffing_gaps"]]
    assert len(gaps) == 4
    assert all(g["duration_s"] == pytest.approx(2400) for g in gaps)  # min(40 min, 10 %)


# --- manifest counting -------------------------------------------------------------------
def test_the_manifest_counts_what_the_items_say(
    small_community: DemoCommunity, busy_items: list[Item]
) -> None:
    builder = ManifestBuilder(make_plan(small_community), {"seed": 5})
    for item in busy_items:
        builder.add(item)
    manifest = json.loads(json.dumps(builder.build()))
    totals = manifest["totals"]
    entries = [i for i in busy_items if i.kind == "entry"]
    persons = [i for i in entries if i.message.kind == "person"]  # type: ignore[union-attr]
    assert totals["passages_total"] == len(entries) == totals["messages"]["entry"]
    assert sum(totals["registration"].values()) == len(entries)
    assert totals["persons_screened"] + totals["persons_unscreened"] == len(persons)
    assert totals["readings"]["entry"] == sum(
        1 for i in persons if getattr(i.message, "temp_c", None) is not None
    )
    assert totals["duplicates"] == dict(Counter(i.kind for i in busy_items if i.duplicate))
    published = sum(1 + i.duplicate for i in busy_items if i.op is Op.PUBLISH)
    assert totals["messages_published"] == published
    assert totals["wills_expected"] == sum(1 for i in busy_items if i.op is Op.DROP)
    per_cp = sum(cp["passages_total"] for cp in manifest["checkpoints"].values())
    assert per_cp == totals["passages_total"]
    windows = [w for cp in manifest["checkpoints"].values() for w in cp["device_windows"]]
    assert sum(w.get("backlog", 0) for w in windows) == sum(totals["backlog_messages"].values())


# --- parameters --------------------------------------------------------------------------
def test_durations_and_rates_parse_with_clear_errors() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("2h") == 7200
    assert parse_duration("1d") == 86_400
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
    rates = IncidentRates().with_overrides("fever=0.5, device-drop=3")
    assert rates.fever == 0.5 and rates.device_drop == 3
    with pytest.raises(ValueError, match="unknown rate"):
        IncidentRates().with_overrides("fevers=1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        IncidentRates().with_overrides("fever=2")
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_params("meteor-strike")
    assert set(SCENARIOS) == {
        "normal-day",
        "fever-cluster",
        "staffing-gap",
        "broker-outage",
        "unregistered-wave",
    }


def test_an_accelerated_run_ends_now_so_no_timestamp_lies_in_the_future() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert SimulationParams(speed=100, duration_s=7200).resolve_start(now) == now - timedelta(
        hours=2
    )
    assert SimulationParams(speed=1).resolve_start(now) == now


def test_credentials_are_read_in_both_layouts(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("checkpoint_id,username,password\ncp-001,dev1,secret1\ncp-002,dev2,s2\n")
    assert read_credentials(plain)["cp-002"] == Credentials("dev2", "s2")
    provisioned = tmp_path / "credentials.csv"
    provisioned.write_text(
        "username,password,role,publish_under,alerts_topic\n"
        "cpm-simulator,simpw,service,,\ncp-001,pw1,device,cpm/v1/cp/cp-001/,cpm/v1/alerts/cp-001\n"
    )
    result = read_credentials(provisioned)
    assert result["cp-001"] == Credentials("cp-001", "pw1")
    assert result[ANY_DEVICE] == Credentials("cpm-simulator", "simpw")
    broken = tmp_path / "broken.csv"
    broken.write_text("cp-001,only-a-user\n")
    with pytest.raises(ValueError, match="row 1"):
        read_credentials(broken)


def test_scenario_passages_are_injected_as_described(small_community: DemoCommunity) -> None:
    cluster = scenario_params("fever-cluster", seed=3, start=START, duration_s=4 * 3600)
    items = list(Plan(cluster, small_community, START.timestamp()).items())
    fevers = [i for i in items if i.passage and "fever_cluster" in i.passage.incidents]
    assert len(fevers) == 8
    assert len({i.checkpoint_id[:6] for i in fevers}) >= 1
    assert all("fever" in i.passage.incidents for i in fevers)  # type: ignore[union-attr]
    wave = scenario_params("unregistered-wave", seed=3, start=START, duration_s=4 * 3600)
    items = list(Plan(wave, small_community, START.timestamp()).items())
    t0 = START.timestamp() + wave.unregistered_waves[0].at_s
    burst = [i for i in items if i.passage and t0 <= i.t < t0 + 1200 and i.passage.incidents]
    people = [i for i in burst if i.passage.kind == "person"]  # type: ignore[union-attr]
    vehicles = [i for i in burst if i.passage.kind == "vehicle"]  # type: ignore[union-attr]
    assert len(people) >= 30 and len(vehicles) >= 8
    assert all(i.passage.registration != "registered" for i in vehicles)  # type: ignore[union-attr]


def test_the_command_line_writes_a_manifest_without_a_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.cli import main
    from services.core.settings import get_settings

    monkeypatch.setenv("CPM_DEMO_MODE", "true")
    get_settings.cache_clear()
    path = tmp_path / "manifest.json"
    args = ["simulate", "--dry-run", "--people", "400", "--duration", "90m", "--seed", "9",
            "--scenario", "staffing-gap", "--start", "2026-03-01T08:00:00+08:00",
            "--manifest", str(path)]  # fmt: skip
    try:
        assert main(args) == 0
        first = json.loads(path.read_text())
        assert main(args) == 0
        assert json.loads(path.read_text()) == first  # same seed, same start: same run
        assert first["scenario"] == "staffing-gap" and first["seed"] == 9
        assert first["start"] == "2026-03-01T00:00:00+00:00"
        assert len(first["checkpoints"]) == 102
        assert main([*args[:-2], "--rates", "fever=7"]) == 2  # a clear refusal
    finally:
        get_settings.cache_clear()
