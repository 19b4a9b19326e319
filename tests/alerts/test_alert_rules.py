"""The alert rules and the delivery arithmetic: pure functions, no broker, no database."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts import signing
from services.alerts.delivery import RetryPolicy
from services.alerts.event_rules import (
    AlertType,
    OpenFever,
    PassageFact,
    ReadingFact,
    is_normal_recheck,
    passage_findings,
    reading_findings,
)
from services.alerts.notifiers import parse_retry_after
from services.alerts.outbox import RouteFilter, route_matches
from services.alerts.silence import DeviceHistory, silence_rows
from services.alerts.timed_rules import (
    CheckpointFact,
    Thresholds,
    conditions,
    ended_conditions,
    holding_at_all,
    screening_due,
    shortage_since,
    unscreened,
)
from services.alerts.watermark import next_watermark
from services.core import online
from services.core.models.alerts import AlertEvent
from services.core.settings import Settings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
THRESHOLDS = Thresholds.from_settings(
    Settings(_env_file=None, demo_mode=True)  # type: ignore[call-arg]
)


def passage(**overrides: object) -> PassageFact:
    base = PassageFact(
        id=10,
        checkpoint_id="cp-001",
        site_id="res-01",
        ts=T0,
        received_at=T0,
        direction="in",
        kind="person",
        registration="registered",
        quarantined=False,
        screened=True,
        id_hash="ab" * 32,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def reading(**overrides: object) -> ReadingFact:
    base = ReadingFact(
        id=20,
        checkpoint_id="cp-001",
        site_id="res-01",
        ts=T0,
        temp_c=36.5,
        fever=False,
        implausible=False,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def checkpoint(**overrides: object) -> CheckpointFact:
    base = CheckpointFact(
        checkpoint_id="cp-001",
        site_id="res-01",
        min_staff=1,
        device_state="online",
        last_seen_at=T0,
        clock_skew_s=0.0,
        on_duty=1,
        staff_left_at=None,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_a_registered_passage_raises_nothing() -> None:
    assert passage_findings(passage()) == []


def test_quarantine_breach_and_unregistered_entry_are_per_person() -> None:
    found = passage_findings(passage(quarantined=True, registration="expired_pass"))
    assert [f.type for f in found] == [AlertType.QUARANTINE_BREACH, AlertType.UNREGISTERED_ENTRY]
    assert all(f.subject == "h:" + "ab" * 8 for f in found)
    assert found[0].severity == "critical" and found[1].severity == "major"
    assert found[1].details["registration"] == "expired_pass"


def test_an_unregistered_vehicle_is_keyed_by_plate() -> None:
    found = passage_findings(
        passage(kind="vehicle", id_hash=None, plate="粤B12345", registration="unregistered_vehicle")
    )
    assert [f.subject for f in found] == ["plate:粤B12345"]


def test_a_clock_adjusted_row_raises_clock_skew() -> None:
    assert [f.type for f in passage_findings(passage(clock_adjusted=True))] == [
        AlertType.CLOCK_SKEW
    ]


def test_fever_is_critical_and_keyed_by_person_entry_or_reading() -> None:
    assert reading_findings(reading(), 0) == []
    (fever,) = reading_findings(reading(fever=True, temp_c=38.2, person="p1"), 0)
    assert fever.type == AlertType.FEVER and fever.severity == "critical"
    assert fever.dedup_key == "fever|cp-001|h:p1"
    (by_entry,) = reading_findings(reading(fever=True, entry_msg_id="e-1"), 0)
    assert by_entry.subject == "entry:e-1"
    (alone,) = reading_findings(reading(fever=True), 0)
    assert alone.subject == "reading:20"


def test_an_implausible_reading_is_a_sensor_fault_from_the_third_never_a_fever() -> None:
    assert reading_findings(reading(implausible=True, fever=True, temp_c=52.0), 2) == []
    (fault,) = reading_findings(reading(implausible=True, temp_c=52.0), 3)
    assert fault.type == AlertType.SENSOR_FAULT and fault.subject == ""


def fever(**overrides: object) -> OpenFever:
    base = OpenFever(
        alert_id=1,
        checkpoint_id="cp-001",
        reading_id=20,
        fever_ts=T0,
        entry_msg_id="e-1",
        passage_id=None,
        person=None,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_recheck_matches_same_entry_passage_or_person_within_the_window() -> None:
    window = timedelta(minutes=10)
    later = T0 + timedelta(minutes=2)
    assert is_normal_recheck(fever(), reading(id=21, ts=later, entry_msg_id="e-1"), window)
    assert is_normal_recheck(fever(passage_id=5), reading(id=21, ts=later, passage_id=5), window)
    assert is_normal_recheck(fever(person="p"), reading(id=21, ts=later, person="p"), window)
    # not: another person, too late, a fever again, implausible, the reading itself
    assert not is_normal_recheck(fever(person="p"), reading(id=21, ts=later, person="q"), window)
    too_late = reading(id=21, ts=T0 + timedelta(minutes=11), entry_msg_id="e-1")
    assert not is_normal_recheck(fever(), too_late, window)
    again = reading(id=21, ts=later, entry_msg_id="e-1", fever=True)
    assert not is_normal_recheck(fever(), again, window)
    broken = reading(id=21, ts=later, entry_msg_id="e-1", implausible=True, temp_c=20.0)
    assert not is_normal_recheck(fever(), broken, window)
    assert not is_normal_recheck(fever(), reading(id=20, ts=later, entry_msg_id="e-1"), window)
    other_cp = reading(id=21, ts=later, entry_msg_id="e-1", checkpoint_id="cp-002")
    assert not is_normal_recheck(fever(), other_cp, window)


def test_staffing_gap_only_after_the_grace_period() -> None:
    left = T0 - THRESHOLDS.staffing_grace
    assert (
        conditions(
            [checkpoint(on_duty=0, staff_left_at=left + timedelta(seconds=1))], T0, THRESHOLDS
        )
        == []
    )
    (gap,) = conditions([checkpoint(on_duty=0, staff_left_at=left)], T0, THRESHOLDS)
    assert gap.type == AlertType.STAFFING_GAP
    # a checkpoint that never reported duty is not flagged; nor one with min_staff 0
    assert conditions([checkpoint(on_duty=0, staff_left_at=None)], T0, THRESHOLDS) == []
    assert (
        conditions([checkpoint(on_duty=0, min_staff=0, staff_left_at=left)], T0, THRESHOLDS) == []
    )


def test_device_offline_when_reported_or_silent_for_the_confirmation_time() -> None:
    confirm = THRESHOLDS.offline_confirm
    assert confirm == timedelta(seconds=60)  # the default, like Alertmanager's `for: 1m`
    silent_since = T0 - THRESHOLDS.device_silence - confirm - timedelta(seconds=1)
    assert conditions([checkpoint()], T0, THRESHOLDS) == []
    reported = checkpoint(device_state="offline", state_since=T0 - confirm, last_seen_at=T0)
    (found,) = conditions([reported], T0, THRESHOLDS)
    assert found.type == AlertType.DEVICE_OFFLINE
    assert found.details["last_seen_at"] == T0.isoformat()  # a will's alert says it too
    (silent,) = conditions([checkpoint(last_seen_at=silent_since)], T0, THRESHOLDS)
    assert silent.type == AlertType.DEVICE_OFFLINE
    assert silent.details["offline_since"] == (silent_since + THRESHOLDS.device_silence).isoformat()
    # never seen at all (not installed yet): nothing to say
    assert conditions([checkpoint(device_state="unknown", last_seen_at=None)], T0, THRESHOLDS) == []


def test_an_offline_spell_shorter_than_the_confirmation_pages_nobody() -> None:
    confirm = THRESHOLDS.offline_confirm
    blip = checkpoint(device_state="offline", state_since=T0 - confirm + timedelta(seconds=1))
    assert conditions([blip], T0, THRESHOLDS) == []
    just_silent = checkpoint(last_seen_at=T0 - THRESHOLDS.device_silence - timedelta(seconds=1))
    assert conditions([just_silent], T0, THRESHOLDS) == []
    # yet it holds: an alert already open for it stays open until the device is back
    assert [f.type for f in holding_at_all([blip, just_silent], T0, THRESHOLDS)] == [
        AlertType.DEVICE_OFFLINE,
        AlertType.DEVICE_OFFLINE,
    ]
    opened = {
        f.dedup_key: (f.type.value, f.checkpoint_id)
        for f in conditions([replace(blip, state_since=T0 - confirm)], T0, THRESHOLDS)
    }
    still = holding_at_all([blip], T0, THRESHOLDS)
    assert ended_conditions(opened, still, [blip], THRESHOLDS) == []
    assert ended_conditions(opened, [], [checkpoint()], THRESHOLDS) == list(opened)


def test_after_a_restart_devices_get_the_confirmation_time_to_reconnect() -> None:
    # the whole system was down for an hour: every device was last heard then
    away = checkpoint(last_seen_at=T0 - timedelta(hours=1))
    started = T0 - timedelta(seconds=5)
    assert conditions([away], T0, THRESHOLDS, watching_since=started) == []
    later = started + THRESHOLDS.offline_confirm
    assert [f.type for f in conditions([away], later, THRESHOLDS, watching_since=started)] == [
        AlertType.DEVICE_OFFLINE
    ]


def test_online_is_one_notion_for_board_gauge_and_alert() -> None:
    silence = THRESHOLDS.device_silence
    heard = T0 - silence  # exactly at the threshold: still online
    assert online.is_online("online", heard, T0, silence)
    assert online.shown_state("online", heard, T0, silence) == "online"
    past = heard - timedelta(seconds=1)
    assert not online.is_online("online", past, T0, silence)
    assert online.shown_state("online", past, T0, silence) == "offline"
    assert online.offline_since("online", None, past, T0, silence) == past + silence
    assert online.shown_state("offline", T0, T0, silence) == "offline"
    assert online.shown_state("unknown", None, T0, silence) == "unknown"
    assert online.shown_state("unknown", T0, T0, silence) == "unknown"
    assert online.shown_state("unknown", past, T0, silence) == "offline"  # as the alert


def test_silence_rows_record_silence_and_return_in_the_status_history() -> None:
    silence = THRESHOLDS.device_silence
    quiet = T0 - silence - timedelta(seconds=30)
    devices = [
        DeviceHistory("cp-001", "online", quiet, "online", quiet - timedelta(hours=1)),
        DeviceHistory("cp-002", "online", quiet, online.SILENT, quiet + silence),  # recorded
        DeviceHistory("cp-003", "online", T0, online.SILENT, quiet + silence),  # heard again
        DeviceHistory("cp-004", "offline", quiet, "offline", quiet),  # its report says it
        DeviceHistory("cp-005", "online", T0, "online", T0),
        DeviceHistory("cp-006", "unknown", None, None, None),
    ]
    assert silence_rows(devices, T0, silence) == [
        {"checkpoint_id": "cp-001", "ts": quiet + silence, "device_ts": quiet + silence,
         "state": online.SILENT},
        {"checkpoint_id": "cp-003", "ts": T0, "device_ts": T0, "state": online.ONLINE},
    ]  # fmt: skip


def test_clock_skew_both_ways_and_its_end_needs_a_measurement() -> None:
    limit = THRESHOLDS.clock_skew_s
    assert conditions([checkpoint(clock_skew_s=limit)], T0, THRESHOLDS) == []
    (skew,) = conditions([checkpoint(clock_skew_s=-limit - 1)], T0, THRESHOLDS)
    key = skew.dedup_key
    open_keys = {key: ("clock_skew", "cp-001")}
    assert ended_conditions(open_keys, [], [checkpoint(clock_skew_s=None)], THRESHOLDS) == []
    assert ended_conditions(open_keys, [], [checkpoint(clock_skew_s=1.0)], THRESHOLDS) == [key]
    assert ended_conditions(open_keys, [skew], [checkpoint(clock_skew_s=-999.0)], THRESHOLDS) == []


def test_unscreened_once_the_window_closes_and_only_for_people() -> None:
    window = THRESHOLDS.screening_window
    p = passage(screened=False)
    assert not screening_due(p, T0 + window, window)  # margin not over yet
    assert screening_due(p, T0 + window + timedelta(seconds=5), window)
    finding = unscreened(p)
    assert finding is not None and finding.subject == "passage:10"
    assert unscreened(passage(screened=True)) is None
    assert unscreened(passage(screened=False, kind="vehicle")) is None
    # a late delivery (device backlog) is measured from when it was received
    late = passage(screened=False, received_at=T0 + timedelta(minutes=5))
    assert not screening_due(late, T0 + window + timedelta(seconds=5), window)


def test_watermark_keeps_skipped_ids_until_found_or_expired() -> None:
    last, gaps = next_watermark(10, [11, 14, 15], [], set(), 100.0, 30.0)
    assert last == 15 and gaps == [[12, 100.0], [13, 100.0]]
    last, gaps = next_watermark(15, [16], gaps, {12}, 110.0, 30.0)
    assert last == 16 and gaps == [[13, 100.0]]
    last, gaps = next_watermark(16, [], gaps, set(), 131.0, 30.0)
    assert last == 16 and gaps == []


def route(**overrides: object) -> RouteFilter:
    base = RouteFilter(
        id=1, site_id=None, checkpoint_id=None, min_severity="warning", types=None, escalation=False
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def matches(r: RouteFilter, event: AlertEvent = AlertEvent.OPENED, **alert: object) -> bool:
    values: dict[str, object] = {
        "alert_type": "fever",
        "severity": "critical",
        "site_id": "res-01",
        "checkpoint_id": "cp-001",
        "escalated": False,
    }
    values.update(alert)
    return route_matches(r, event=event, **values)  # type: ignore[arg-type]


def test_routes_filter_by_site_checkpoint_severity_type_and_kind() -> None:
    assert matches(route())
    assert not matches(route(site_id="res-02"))
    assert not matches(route(checkpoint_id="cp-002"))
    assert not matches(route(min_severity="critical"), severity="major")
    assert matches(route(min_severity="major"), severity="critical")
    assert not matches(route(types=["device_offline"]))
    assert not matches(route(enabled=False))
    assert not matches(route(), AlertEvent.ESCALATED)
    supervisors = route(escalation=True)
    assert not matches(supervisors) and matches(supervisors, AlertEvent.ESCALATED)
    assert matches(supervisors, AlertEvent.RESOLVED, escalated=True)
    assert not matches(supervisors, AlertEvent.RESOLVED, escalated=False)


def test_standard_webhooks_signature_round_trip() -> None:
    secret = signing.new_secret()
    body = b'{"type":"alert.opened"}'
    now = int(time.time())
    headers = signing.headers(secret, "msg_1", now, body)
    assert headers["webhook-signature"].startswith("v1,")
    signing.verify(secret, headers, body, now)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, headers, body + b" ", now)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(signing.new_secret(), headers, body, now)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, headers, body, now + 301)
    with pytest.raises(signing.InvalidSecret):
        signing.secret_key("not-a-secret")


def test_standard_webhooks_reference_vector() -> None:
    # from the Standard Webhooks reference implementations' test suite
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_backoff_grows_with_jitter_caps_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=60.0)
    rng = random.Random(1)
    delays = [policy.delay(n, None, rng) for n in range(1, 10)]
    assert 0.5 <= delays[0] <= 1.0 and 4.0 <= delays[3] <= 8.0
    assert max(delays) <= 60.0
    assert policy.delay(1, 120.0, rng) == 120.0
    assert policy.delay(1, 10**9, rng) == policy.retry_after_cap_s


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("presence", "min_staff", "expected"),
    [
        # two leave, two needed: short since the first departure, not the second
        ([(False, at(0)), (False, at(4))], 2, at(0)),
        # one needed: the second departure took it below
        ([(False, at(0)), (False, at(4))], 1, at(4)),
        # left, someone came, left again: the gap began with the last departure
        ([(False, at(0)), (True, at(2)), (False, at(4))], 2, at(4)),
        # an arrival and a departure at the same instant, still short: the earliest
        ([(False, at(0)), (True, at(3)), (False, at(3))], 2, at(0)),
        # never enough staff on record: the earliest departure
        ([(True, at(1)), (False, at(2))], 3, at(2)),
        # enough on duty: no shortage
        ([(True, at(1)), (False, at(2)), (True, at(3))], 2, None),
        # nobody ever left: staffing not reported, no shortage to date
        ([(True, at(1))], 2, None),
        ([], 1, None),
    ],
)
def test_a_shortage_starts_when_the_checkpoint_fell_short(
    presence: list[tuple[bool, datetime]], min_staff: int, expected: datetime | None
) -> None:
    assert shortage_since(presence, min_staff) == expected
