"""Condition and deadline rules, evaluated on a timer: pure functions over the live
state of the checkpoints and the clock (`now` is always passed in)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.alerts.event_rules import (
    UNSCREENED_MARGIN,
    AlertType,
    Finding,
    PassageFact,
    Severity,
)
from services.alerts.screening_quality import ScreeningThresholds
from services.core import online
from services.core.settings import Settings

DEFAULT_SCREENING = ScreeningThresholds()


@dataclass(frozen=True, slots=True)
class Thresholds:
    staffing_grace: timedelta
    device_silence: timedelta
    clock_skew_s: float
    screening_window: timedelta
    escalate: dict[str, timedelta]  # per severity
    # how long a device must stay offline before device_offline opens (Alertmanager's
    # `for`): a restart or a blip pages nobody
    offline_confirm: timedelta = timedelta(0)
    # the roster rules (roster_rules.py) and the local day their requirements live in
    no_show_after: timedelta = timedelta(minutes=15)
    left_post_grace: timedelta = timedelta(minutes=10)
    timezone: str = "Asia/Shanghai"
    screening: ScreeningThresholds = DEFAULT_SCREENING

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
            offline_confirm=timedelta(seconds=s.device_offline_confirm_s),
            no_show_after=timedelta(seconds=s.no_show_after_s),
            left_post_grace=timedelta(seconds=s.left_post_grace_s),
            timezone=s.timezone,
            screening=ScreeningThresholds(
                window=s.screening_quality_window,
                identical_run=s.screening_identical_run,
                min_spread_c=s.screening_min_spread_c,
                min_interval_s=s.screening_min_interval_s,
                max_unmatched_share=s.screening_max_unmatched_share,
            ),
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
    # when the device's current state was reported (its `offline` report, say)
    state_since: datetime | None = None


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


def device_offline(
    cp: CheckpointFact, now: datetime, t: Thresholds, watching_since: datetime | None = None
) -> Finding | None:
    """Offline as the board shows it (services/core/online.py), for `offline_confirm`,
    counted from no earlier than `watching_since` (when the rules started watching): after
    a restart of the whole system, devices get that long to reconnect before any page."""
    since = online.offline_since(
        cp.device_state, cp.state_since, cp.last_seen_at, now, t.device_silence
    )
    if since is None:
        return None
    confirm_from = since if watching_since is None else max(since, watching_since)
    if now - confirm_from < t.offline_confirm:
        return None
    why = "reported offline" if cp.device_state == online.OFFLINE else "silent"
    seen = cp.last_seen_at.isoformat() if cp.last_seen_at else None
    return Finding(
        AlertType.DEVICE_OFFLINE,
        cp.checkpoint_id,
        cp.site_id,
        "",
        f"Device at {cp.checkpoint_id} {why}" + (f", last heard {seen}" if seen else ""),
        {
            "device_state": cp.device_state,
            "last_seen_at": seen,
            "offline_since": since.isoformat(),
        },
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


def conditions(
    checkpoints: list[CheckpointFact],
    now: datetime,
    t: Thresholds,
    watching_since: datetime | None = None,
) -> list[Finding]:
    """Every condition that holds now (device_offline once confirmed)."""
    found: list[Finding] = []
    for cp in checkpoints:
        for finding in (
            staffing_gap(cp, now, t),
            device_offline(cp, now, t, watching_since),
            clock_skew(cp, t),
        ):
            if finding is not None:
                found.append(finding)
    return found


def holding_at_all(
    checkpoints: list[CheckpointFact], now: datetime, t: Thresholds
) -> list[Finding]:
    """Every condition that holds now, confirmed or not: an open device_offline alert
    ends when its device is back, not while an offline spell awaits confirmation."""
    return conditions(checkpoints, now, replace(t, offline_confirm=timedelta(0)))


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
