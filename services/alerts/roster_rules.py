"""Staffing rules on the roster, as pure functions over plain data (`now` passed in):

- `staffing_gap`: the requirements in force (count and role mix, services/core/
  staffing.py) have been unmet for longer than the grace, with what is missing;
- `no_show`: a rostered person has not come on duty N minutes into their shift;
- `left_post`: a rostered person went off duty before their shift ended, stayed away
  longer than the grace, and nobody made up the number (fewer on duty than rostered).

All three are conditions: they resolve themselves when they stop holding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.alerts.event_rules import AlertType, Finding
from services.core.staffing import Segment, unmet_since


@dataclass(frozen=True, slots=True)
class RosterThresholds:
    staffing_grace: timedelta
    no_show_after: timedelta
    left_post_grace: timedelta


@dataclass(frozen=True, slots=True)
class ShiftFact:
    """One rostered person's current shift, with what their duty events say."""

    checkpoint_id: str
    site_id: str
    staff_id: str
    duty_role: str
    starts_at: datetime
    ends_at: datetime
    periods: tuple[tuple[datetime, datetime], ...]  # on duty at this checkpoint, to now


def staffing_gap(
    checkpoint_id: str,
    site_id: str,
    segments: Sequence[Segment],
    now: datetime,
    t: RosterThresholds,
) -> Finding | None:
    """The requirements unmet since longer than the grace. `segments` end at now."""
    since = unmet_since(segments)
    if since is None or not segments or now - since < t.staffing_grace:
        return None
    lack = segments[-1].missing
    assert lack is not None  # unmet at the end
    minutes = int((now - since).total_seconds() // 60)
    return Finding(
        AlertType.STAFFING_GAP,
        checkpoint_id,
        site_id,
        "",
        f"{checkpoint_id}: {lack.describe()} ({lack.requirement}) for {minutes} min",
        {
            **lack.as_dict(),
            "min_staff": lack.need,
            "on_duty_staff": list(segments[-1].on_duty),
            "since": since.isoformat(),
        },
    )


def _on_duty_at(shift: ShiftFact, moment: datetime) -> bool:
    return any(a <= moment < b for a, b in shift.periods)


def came(shift: ShiftFact, now: datetime) -> bool:
    """On duty at some time of the shift so far (arriving early counts)."""
    return any(a < now and b > shift.starts_at for a, b in shift.periods)


def no_show(shift: ShiftFact, now: datetime, t: RosterThresholds) -> Finding | None:
    if not (shift.starts_at + t.no_show_after <= now < shift.ends_at) or came(shift, now):
        return None
    minutes = int((now - shift.starts_at).total_seconds() // 60)
    return Finding(
        AlertType.NO_SHOW,
        shift.checkpoint_id,
        shift.site_id,
        shift.staff_id,
        f"{shift.staff_id} ({shift.duty_role}) not on duty at {shift.checkpoint_id}, "
        f"{minutes} min into the shift",
        {
            "staff_id": shift.staff_id,
            "duty_role": shift.duty_role,
            "shift_starts_at": shift.starts_at.isoformat(),
            "shift_ends_at": shift.ends_at.isoformat(),
        },
    )


def left_post(
    shift: ShiftFact, on_duty_now: int, rostered_now: int, now: datetime, t: RosterThresholds
) -> Finding | None:
    """Gone before the end of the shift (by more than the grace), away longer than the
    grace, and the checkpoint has fewer on duty than rostered."""
    if not (shift.starts_at <= now < shift.ends_at) or not came(shift, now):
        return None
    if _on_duty_at(shift, now) or on_duty_now >= rostered_now:
        return None
    left_at = max(b for a, b in shift.periods if b > shift.starts_at)
    if left_at > shift.ends_at - t.left_post_grace or now - left_at < t.left_post_grace:
        return None
    minutes = int((now - left_at).total_seconds() // 60)
    return Finding(
        AlertType.LEFT_POST,
        shift.checkpoint_id,
        shift.site_id,
        shift.staff_id,
        f"{shift.staff_id} ({shift.duty_role}) left {shift.checkpoint_id} {minutes} min ago "
        "before the end of the shift; nobody replaced them",
        {
            "staff_id": shift.staff_id,
            "duty_role": shift.duty_role,
            "left_at": left_at.isoformat(),
            "shift_ends_at": shift.ends_at.isoformat(),
            "on_duty": on_duty_now,
            "rostered": rostered_now,
        },
    )


def roster_conditions(
    shifts: Sequence[ShiftFact], on_duty_now: dict[str, int], now: datetime, t: RosterThresholds
) -> list[Finding]:
    """`no_show` and `left_post` over every current shift."""
    rostered: dict[str, int] = {}
    for shift in shifts:
        if shift.starts_at <= now < shift.ends_at:
            rostered[shift.checkpoint_id] = rostered.get(shift.checkpoint_id, 0) + 1
    found: list[Finding] = []
    for shift in shifts:
        cp = shift.checkpoint_id
        for finding in (
            no_show(shift, now, t),
            left_post(shift, on_duty_now.get(cp, 0), rostered.get(cp, 0), now, t),
        ):
            if finding is not None:
                found.append(finding)
    return found
