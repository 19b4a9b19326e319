"""The business rules of ingest, as pure functions over plain data.

Is this passage registered? Is this person under home quarantine? Can the device clock
be trusted? Is this reading a fever, or a faulty sensor? Which reading screened which
passage? No broker and no database here: `store.py` feeds these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.core.enums import Registration, Screening


# --- registration ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PassRecord:
    id: int
    person_id: int
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class QuarantineWindow:
    starts_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None

    def covers(self, ts: datetime) -> bool:
        if ts < self.starts_at:
            return False
        if self.ends_at is not None and ts >= self.ends_at:
            return False
        return self.lifted_at is None or ts < self.lifted_at


def classify_person(
    *,
    id_valid: bool,
    person_id: int | None,
    qr_pass: str | None,
    pass_record: PassRecord | None,
    ts: datetime,
) -> Registration:
    """Precedence (first that applies): invalid_id, unknown_person, no_pass,
    unknown_pass, pass_mismatch, revoked_pass, expired_pass, registered."""
    if not id_valid:
        return Registration.INVALID_ID
    if person_id is None:
        return Registration.UNKNOWN_PERSON
    if not qr_pass:
        return Registration.NO_PASS
    if pass_record is None:
        return Registration.UNKNOWN_PASS
    if pass_record.person_id != person_id:
        return Registration.PASS_MISMATCH
    if pass_record.revoked_at is not None and pass_record.revoked_at <= ts:
        return Registration.REVOKED_PASS
    if ts < pass_record.valid_from or (
        pass_record.valid_until is not None and ts >= pass_record.valid_until
    ):
        return Registration.EXPIRED_PASS
    return Registration.REGISTERED


def classify_vehicle(*, vehicle_active: bool | None) -> Registration:
    """`vehicle_active` is None when the plate is not in the registry."""
    return Registration.REGISTERED if vehicle_active else Registration.UNREGISTERED_VEHICLE


def is_quarantined(windows: list[QuarantineWindow], ts: datetime) -> bool:
    return any(window.covers(ts) for window in windows)


# --- device clocks ---------------------------------------------------------------------
def trusted_time(
    device_ts: datetime, received_at: datetime, *, future_skew_s: int, max_age_h: int
) -> tuple[datetime, bool]:
    """The time to file an event under, and whether the device clock was overruled.

    A backlog replayed after an outage keeps its original (past) timestamps; only a time
    in the future, or older than any plausible backlog, is replaced by the receive time.
    """
    if device_ts > received_at + timedelta(seconds=future_skew_s):
        return received_at, True
    if device_ts < received_at - timedelta(hours=max_age_h):
        return received_at, True
    return device_ts, False


# --- temperatures ----------------------------------------------------------------------
def flag_temperature(
    temp_c: float, *, fever_threshold_c: float, plausible_min_c: float, plausible_max_c: float
) -> tuple[bool, bool]:
    """(fever, implausible). An implausible reading is a sensor fault, never a fever."""
    implausible = not (plausible_min_c <= temp_c <= plausible_max_c)
    return (not implausible and temp_c >= fever_threshold_c), implausible


# --- screening -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenPassage:
    """A person passage not yet screened."""

    id: int
    checkpoint_id: str
    direction: str
    ts: datetime
    msg_id: str


@dataclass(frozen=True, slots=True)
class OpenReading:
    """A plausible reading not yet linked to a passage."""

    id: int
    checkpoint_id: str
    direction: str
    ts: datetime
    entry_msg_id: str | None


@dataclass(frozen=True, slots=True)
class ScreeningMatch:
    passage_id: int
    reading_id: int
    how: Screening


def link_named(passages: list[OpenPassage], readings: list[OpenReading]) -> list[ScreeningMatch]:
    """A reading that names its entry (`entry_msg_id`) screens that passage and no other
    (one reading per passage). The unnamed ones go to the time window
    (`matching.match_screenings`: the nearest unscreened passage in the same lane)."""
    matches: list[ScreeningMatch] = []
    by_msg = {(p.checkpoint_id, p.msg_id): p for p in passages}
    taken: set[int] = set()
    for reading in readings:
        if reading.entry_msg_id is None:
            continue
        passage = by_msg.get((reading.checkpoint_id, reading.entry_msg_id))
        if passage is not None and passage.id not in taken:
            matches.append(ScreeningMatch(passage.id, reading.id, Screening.LINKED_READING))
            taken.add(passage.id)
    return matches


def hour_bucket(ts: datetime) -> datetime:
    """The UTC hour a roll-up counts an event in."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
