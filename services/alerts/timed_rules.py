"""Condition and deadline rules, evaluated on a timer: pure functions over the live
state of the checkpoints and the clock (`now` is always passed in)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.alerts.event_rules import (
    UNSCREENED_MARGIN,
    AlertType,
    Finding,
    PassageFact,
    Severity,
)
from services.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Thresholds:
    staffing_grace: timedelta
    device_silence: timedelta
    clock_skew_s: float
    screening_window: timedelta
    escalate: dict[str, timedelta]  # per severity
    # the roster rules (roster_rules.py) and the local day their requirements live in
    no_show_after: timedelta = timedelta(minutes=15)
    left_post_grace: timedelta = timedelta(minutes=10)
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, s: Settings) -> Thresholds:
        return cls(
            staffing_grace=timedelta(seconds=s.staffing_grace_s),
            device_silence=timedelta(seconds=s.device_silence_s),
            clock_skew_s=float(s.clock_skew_alert_s),
            screening_window=timedelta(seconds=s.screening_window_s),
            escalate={
                Severity.CRITICAL: timedelta(seconds=s.escalate_critical_s),
                Severity.MAJOR: timedelta(seconds=s.escalate_major_s),
                Severity.WARNING: timedelta(seconds=s.escalate_warning_s),
            },
            no_show_after=timedelta(seconds=s.no_show_after_s),
            left_post_grace=timedelta(seconds=s.left_post_grace_s),
            timezone=s.timezone,
        )


@dataclass(frozen=True, slots=True)
class CheckpointFact:
    checkpoint_id: str
    site_id: str
    min_staff: int
    device_state: str  # online | offline | unknown
    last_seen_at: datetime | None
    clock_skew_s: float | None
    on_duty: int
    # when the current shortage began: the departure that took the checkpoint below
    # `min_staff` (see `shortage_since`); None when no staff member ever left there,
    # i.e. staffing is not reported at all
    staff_left_at: datetime | None


def shortage_since(presence: Iterable[tuple[bool, datetime]], min_staff: int) -> datetime | None:
    """When a checkpoint with fewer than `min_staff` on duty fell short, from each staff
    member's latest duty state (on_duty, since): walking back from now, the latest
    departure before which enough staff were on duty. Not merely the latest departure:
    a second member leaving during a gap does not start it again. Short before any
    departure on record: the earliest one. None when nobody is short, or nobody left."""
    need = max(min_staff, 1)
    by_time: dict[datetime, list[bool]] = {}
    count = 0
    for on_duty, since in presence:
        count += on_duty
        by_time.setdefault(since, []).append(on_duty)
    if count >= need:
        return None
    earliest_departure: datetime | None = None
    for since in sorted(by_time, reverse=True):
        states = by_time[since]
        arrived, left = sum(states), len(states) - sum(states)
        count += left - arrived  # on duty just before `since`
        if left:
            earliest_departure = since
            if count >= need:
                return since
    return earliest_departure


def staffing_gap(cp: CheckpointFact, now: datetime, t: Thresholds) -> Finding | None:
    if cp.min_staff <= 0 or cp.on_duty >= cp.min_staff or cp.staff_left_at is None:
        return None
    if now - cp.staff_left_at < t.staffing_grace:
        return None
    minutes = int((now - cp.staff_left_at).total_seconds() // 60)
    return Finding(
        AlertType.STAFFING_GAP,
        cp.checkpoint_id,
        cp.site_id,
        "",
        f"{cp.checkpoint_id}: {cp.on_duty} of {cp.min_staff} staff on duty for {minutes} min",
        {"on_duty": cp.on_duty, "min_staff": cp.min_staff, "since": cp.staff_left_at.isoformat()},
    )


def device_offline(cp: CheckpointFact, now: datetime, t: Thresholds) -> Finding | None:
    silent = cp.last_seen_at is not None and now - cp.last_seen_at > t.device_silence
    if cp.device_state != "offline" and not silent:
        return None
    why = "reported offline" if cp.device_state == "offline" else "silent"
    seen = cp.last_seen_at.isoformat() if cp.last_seen_at else None
    return Finding(
        AlertType.DEVICE_OFFLINE,
        cp.checkpoint_id,
        cp.site_id,
        "",
        f"Device at {cp.checkpoint_id} {why}" + (f", last heard {seen}" if seen else ""),
        {"device_state": cp.device_state, "last_seen_at": seen},
    )


def clock_skew(cp: CheckpointFact, t: Thresholds) -> Finding | None:
    if cp.clock_skew_s is None or abs(cp.clock_skew_s) <= t.clock_skew_s:
        return None
    return Finding(
        AlertType.CLOCK_SKEW,
        cp.checkpoint_id,
        cp.site_id,
        "",
        f"Device clock at {cp.checkpoint_id} is {cp.clock_skew_s:+.0f} s off",
        {"clock_skew_s": cp.clock_skew_s},
    )


def clock_known_good(cp: CheckpointFact, t: Thresholds) -> bool:
    """Only a measured skew within bounds ends a clock alert (None says nothing)."""
    return cp.clock_skew_s is not None and abs(cp.clock_skew_s) <= t.clock_skew_s


def conditions(checkpoints: list[CheckpointFact], now: datetime, t: Thresholds) -> list[Finding]:
    """Every condition that holds now."""
    found: list[Finding] = []
    for cp in checkpoints:
        for finding in (staffing_gap(cp, now, t), device_offline(cp, now, t), clock_skew(cp, t)):
            if finding is not None:
                found.append(finding)
    return found


def ended_conditions(
    open_keys: dict[str, tuple[str, str]],
    holding: list[Finding],
    checkpoints: list[CheckpointFact],
    t: Thresholds,
) -> list[str]:
    """Dedup keys of open condition alerts ({key: (type, checkpoint)}) whose condition
    no longer holds. A clock alert also needs a measured good clock: one opened by a
    clock-adjusted row has no skew on record until the device reports again."""
    holds = {f.dedup_key for f in holding}
    by_cp = {cp.checkpoint_id: cp for cp in checkpoints}
    ended = []
    for key, (alert_type, checkpoint_id) in open_keys.items():
        if key in holds:
            continue
        cp = by_cp.get(checkpoint_id)
        if cp is None:
            continue  # checkpoint deactivated: leave it to staff
        if alert_type == AlertType.CLOCK_SKEW and not clock_known_good(cp, t):
            continue
        ended.append(key)
    return ended


def screening_deadline(passage: PassageFact, window: timedelta) -> datetime:
    """When a passage must be screened by. Measured from the later of the device time and
    the receipt time, so a device catching up on a backlog is not flagged for it."""
    return max(passage.ts, passage.received_at) + window + UNSCREENED_MARGIN


def screening_due(passage: PassageFact, now: datetime, window: timedelta) -> bool:
    return now >= screening_deadline(passage, window)


def unscreened(passage: PassageFact) -> Finding | None:
    """A person passage still unscreened once `screening_due` (the caller's check)."""
    if passage.kind != "person" or passage.screened:
        return None
    return Finding(
        AlertType.UNSCREENED_PASSAGE,
        passage.checkpoint_id,
        passage.site_id,
        f"passage:{passage.id}",
        f"Person passage at {passage.checkpoint_id} ({passage.direction}) without a "
        "temperature reading",
        {"passage_id": passage.id, "ts": passage.ts.isoformat(), "direction": passage.direction},
    )


def escalation_delay(severity: str, t: Thresholds) -> timedelta:
    return t.escalate.get(severity, t.escalate[Severity.WARNING])
