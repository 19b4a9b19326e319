"""The pure rules of ingest, without broker or database."""

from datetime import UTC, datetime, timedelta

from services.core.enums import Registration, Screening
from services.ingest.matching import match_screenings
from services.ingest.rules import (
    OpenPassage,
    OpenReading,
    PassRecord,
    QuarantineWindow,
    classify_person,
    classify_vehicle,
    flag_temperature,
    hour_bucket,
    is_quarantined,
    trusted_time,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
VALID_PASS = PassRecord(
    1, person_id=10, valid_from=T0 - timedelta(days=1), valid_until=None, revoked_at=None
)


def person(**overrides: object) -> Registration:
    values: dict = {
        "id_valid": True,
        "person_id": 10,
        "qr_pass": "QR1",
        "pass_record": VALID_PASS,
        "ts": T0,
    }
    values.update(overrides)
    return classify_person(**values)


def test_registration_precedence() -> None:
    assert person() is Registration.REGISTERED
    assert person(id_valid=False, person_id=None, qr_pass=None) is Registration.INVALID_ID
    assert person(person_id=None) is Registration.UNKNOWN_PERSON
    assert person(qr_pass=None, pass_record=None) is Registration.NO_PASS
    assert person(pass_record=None) is Registration.UNKNOWN_PASS
    borrowed = PassRecord(2, 11, T0 - timedelta(days=1), None, None)
    assert person(pass_record=borrowed) is Registration.PASS_MISMATCH
    revoked = PassRecord(1, 10, T0 - timedelta(days=1), None, T0 - timedelta(hours=1))
    assert person(pass_record=revoked) is Registration.REVOKED_PASS
    assert person(pass_record=revoked, ts=T0 - timedelta(hours=2)) is Registration.REGISTERED
    expired = PassRecord(1, 10, T0 - timedelta(days=9), T0 - timedelta(days=1), None)
    assert person(pass_record=expired) is Registration.EXPIRED_PASS
    not_yet = PassRecord(1, 10, T0 + timedelta(days=1), None, None)
    assert person(pass_record=not_yet) is Registration.EXPIRED_PASS


def test_vehicles() -> None:
    assert classify_vehicle(vehicle_active=True) is Registration.REGISTERED
    assert classify_vehicle(vehicle_active=False) is Registration.UNREGISTERED_VEHICLE
    assert classify_vehicle(vehicle_active=None) is Registration.UNREGISTERED_VEHICLE


def test_quarantine_windows() -> None:
    open_ended = QuarantineWindow(T0, None, None)
    assert is_quarantined([open_ended], T0 + timedelta(days=3))
    assert not is_quarantined([open_ended], T0 - timedelta(seconds=1))
    lifted = QuarantineWindow(T0, None, T0 + timedelta(days=1))
    assert not is_quarantined([lifted], T0 + timedelta(days=2))
    ended = QuarantineWindow(T0, T0 + timedelta(days=14), None)
    assert is_quarantined([ended], T0 + timedelta(days=13))
    assert not is_quarantined([ended], T0 + timedelta(days=14))
    assert not is_quarantined([], T0)


def test_device_clock_is_overruled_only_when_implausible() -> None:
    limits = {"future_skew_s": 300, "max_age_h": 72}
    assert trusted_time(T0 - timedelta(hours=2), T0, **limits) == (T0 - timedelta(hours=2), False)
    assert trusted_time(T0 + timedelta(minutes=4), T0, **limits) == (
        T0 + timedelta(minutes=4),
        False,
    )
    assert trusted_time(T0 + timedelta(minutes=6), T0, **limits) == (T0, True)
    assert trusted_time(T0 - timedelta(days=4), T0, **limits) == (T0, True)


def test_fever_and_implausible_readings() -> None:
    limits = {"fever_threshold_c": 37.3, "plausible_min_c": 30.0, "plausible_max_c": 45.0}
    assert flag_temperature(37.3, **limits) == (True, False)
    assert flag_temperature(37.2, **limits) == (False, False)
    assert flag_temperature(25.0, **limits) == (False, True)
    assert flag_temperature(46.0, **limits) == (False, True)
    assert flag_temperature(38.0, **{**limits, "fever_threshold_c": 38.5}) == (False, False)


def p(pid: int, seconds: float, direction: str = "in", cp: str = "cp-1") -> OpenPassage:
    return OpenPassage(pid, cp, direction, T0 + timedelta(seconds=seconds), f"e{pid}")


def r(
    rid: int, seconds: float, direction: str = "in", cp: str = "cp-1", entry: str | None = None
) -> OpenReading:
    return OpenReading(rid, cp, direction, T0 + timedelta(seconds=seconds), entry)


def pairs(matches: list) -> set[tuple[int, int, Screening]]:
    return {(m.passage_id, m.reading_id, m.how) for m in matches}


def test_named_reading_screens_its_entry_only() -> None:
    matches = match_screenings([p(1, 0), p(2, 100)], [r(9, 1, entry="e2")], 30)
    assert pairs(matches) == {(2, 9, Screening.LINKED_READING)}
    # naming an entry that is not open (already screened) screens nobody else
    assert match_screenings([p(1, 0)], [r(9, 1, entry="e7")], 30) == []


def test_time_window_takes_closest_pairs_in_the_same_lane() -> None:
    passages = [p(1, 0), p(2, 20), p(3, 5, direction="out"), p(4, 0, cp="cp-2")]
    readings = [r(8, 18), r(9, 3), r(10, 100)]
    assert pairs(match_screenings(passages, readings, 30)) == {
        (2, 8, Screening.TIME_WINDOW),
        (1, 9, Screening.TIME_WINDOW),
    }
    assert match_screenings([p(1, 0)], [r(9, 31)], 30) == []
    assert match_screenings([p(1, 0)], [r(9, -30)], 30) != []


def test_hour_bucket_is_utc() -> None:
    local = datetime(2026, 3, 1, 8, 59, 59, tzinfo=UTC).astimezone()
    assert hour_bucket(local) == datetime(2026, 3, 1, 8, tzinfo=UTC)
