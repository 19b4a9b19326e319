"""The timed rules: conditions (staffing, device, clock), screening deadlines, sensor
faults that ended, and escalation. One call evaluates everything for `now` in one
transaction; the service runs it on APScheduler, only in the leader (leader.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from services.alerts import store
from services.alerts.bulk import plans_for_now
from services.alerts.event_processor import passage_fact
from services.alerts.event_rules import CONDITION_TYPES, SENSOR_FAULT_WINDOW, AlertType
from services.alerts.raising import raise_findings
from services.alerts.roster_timers import with_roster
from services.alerts.screening_timers import screening_pass
from services.alerts.silence import record_silences
from services.alerts.supervision_processor import run_supervision
from services.alerts.timed_rules import (
    CheckpointFact,
    Thresholds,
    conditions,
    ended_conditions,
    escalation_delay,
    holding_at_all,
    screening_due,
    shortage_since,
    unscreened,
)
from services.alerts.watermark import WatermarkMoved, advance_watermark, read_watermark
from services.core.tables import checkpoint_t, passage_t, presence_t, reading_t, state_t

log = logging.getLogger(__name__)

UNSCREENED_WATERMARK = "unscreened"
SCREENED_PER_QUERY = 1000  # passage ids in one look-up of screened_passages
RESOLVED_BY = {
    AlertType.STAFFING_GAP: "staff_on_duty",
    AlertType.DEVICE_OFFLINE: "device_online",
    AlertType.CLOCK_SKEW: "clock_ok",
    AlertType.NO_SHOW: "on_duty_or_shift_over",
    AlertType.LEFT_POST: "post_covered_or_shift_over",
}


@dataclass
class TimerReport:
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


def load_checkpoints(conn: Connection) -> list[CheckpointFact]:
    presence: dict[str, list[tuple[bool, datetime]]] = {}
    for cp_id, on_duty, since in conn.execute(
        select(presence_t.c.checkpoint_id, presence_t.c.on_duty, presence_t.c.since)
    ):
        moment = _aware(since)
        if moment is not None:
            presence.setdefault(cp_id, []).append((bool(on_duty), moment))
    rows = conn.execute(
        select(
            checkpoint_t.c.id,
            checkpoint_t.c.site_id,
            checkpoint_t.c.min_staff,
            state_t.c.device_state,
            state_t.c.last_seen_at,
            state_t.c.clock_skew_s,
            state_t.c.state_since,
        )
        .outerjoin(state_t, state_t.c.checkpoint_id == checkpoint_t.c.id)
        .where(checkpoint_t.c.active.is_(True))
    ).all()
    return [
        CheckpointFact(
            checkpoint_id=r.id,
            site_id=r.site_id,
            min_staff=r.min_staff,
            device_state=r.device_state or "unknown",
            last_seen_at=_aware(r.last_seen_at),
            clock_skew_s=r.clock_skew_s,
            on_duty=sum(on for on, _ in presence.get(r.id, ())),
            staff_left_at=shortage_since(presence.get(r.id, ()), r.min_staff),
            state_since=_aware(r.state_since),
        )
        for r in rows
    ]


def _aware(value: Any) -> datetime | None:
    """A UTCDateTime, also when a driver gives text or a naive value back."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def screened_passages(conn: Connection, passage_ids: list[int]) -> set[int]:
    """Those of the passages that are screened, by primary key, a chunk at a time."""
    screened: set[int] = set()
    for start in range(0, len(passage_ids), SCREENED_PER_QUERY):
        chunk = passage_ids[start : start + SCREENED_PER_QUERY]
        screened.update(
            conn.execute(
                select(passage_t.c.id).where(
                    passage_t.c.id.in_(chunk), passage_t.c.screened.is_(True)
                )
            ).scalars()
        )
    return screened


@dataclass
class Timers:
    engine: Engine
    thresholds: Thresholds
    clock: Callable[[], datetime]
    batch_size: int = 1000
    # the first pass's time: a device_offline is confirmed from no earlier than this
    watching_since: datetime | None = None

    def run(self) -> TimerReport:
        now = self.clock()
        report = TimerReport()
        try:
            with self.engine.begin() as conn:
                plans_for_now(conn)
                self._conditions(conn, now, report)
                report.opened += screening_pass(
                    conn, now, self.thresholds.screening, self._match_after(), self._raise
                )
                self._unscreened(conn, now, report)
                self._sensor_faults(conn, now, report)
                self._supervision(conn, now, report)
                report.escalated = store.escalate_due(
                    conn, now, lambda severity: escalation_delay(severity, self.thresholds)
                )
        except WatermarkMoved:
            # another worker ran the timed rules in between: all of this pass is rolled
            # back (nothing raised twice) and the next pass starts from its watermark
            log.info("unscreened watermark moved under us; retrying next pass")
            return TimerReport()
        return report

    def _match_after(self) -> timedelta:
        """A handheld reading older than this that met no passage never will."""
        return 2 * self.thresholds.screening_window + timedelta(seconds=30)

    def _raise(self, conn: Connection, finding: Any, now: datetime, repeat: bool) -> Any:
        delay = escalation_delay(finding.severity, self.thresholds)
        return store.raise_alert(conn, finding, now, delay, repeat=repeat)

    def _conditions(self, conn: Connection, now: datetime, report: TimerReport) -> None:
        record_silences(conn, now, self.thresholds.device_silence)
        checkpoints = load_checkpoints(conn)
        if self.watching_since is None:
            self.watching_since = now
        holding = with_roster(
            conn,
            now,
            self.thresholds,
            conditions(checkpoints, now, self.thresholds, self.watching_since),
        )
        for finding in holding:
            raised = self._raise(conn, finding, now, repeat=False)
            if raised is not None and raised.created:
                report.opened.append(raised.alert_id)
        open_rows = store.open_alerts_of(conn, [t.value for t in CONDITION_TYPES])
        open_keys = {r.open_key: (r.type, r.checkpoint_id) for r in open_rows}
        # device_offline ends when the device is back, not while an offline spell awaits
        # confirmation; every other condition (the roster's included) is in `holding`
        still = holding + [
            f
            for f in holding_at_all(checkpoints, now, self.thresholds)
            if f.type == AlertType.DEVICE_OFFLINE
        ]
        ended = ended_conditions(open_keys, still, checkpoints, self.thresholds)
        for key in ended:
            alert_type = AlertType(open_keys[key][0])
            report.resolved += store.resolve_keys(conn, [key], now, RESOLVED_BY[alert_type])

    def _unscreened(self, conn: Connection, now: datetime, report: TimerReport) -> None:
        """Passages in id order up to the first whose screening deadline is still ahead.
        Every lower id was handed out earlier, so its transaction has long finished:
        no gaps to track here, unlike the processor."""
        wm = read_watermark(conn, UNSCREENED_WATERMARK)
        if wm is None:
            return
        rows = conn.execute(
            select(passage_t, checkpoint_t.c.site_id)
            .join(checkpoint_t, checkpoint_t.c.id == passage_t.c.checkpoint_id)
            .where(passage_t.c.id > wm["last_id"])
            .order_by(passage_t.c.id)
            .limit(self.batch_size)
        ).all()
        last = wm["last_id"]
        findings = []
        for row in rows:
            fact = passage_fact(row)
            if not screening_due(fact, now, self.thresholds.screening_window):
                break
            finding = unscreened(fact)
            if finding is not None:
                findings.append(finding)
            last = row.id
        # raised as one batch (raising.py): the same alerts as one by one, in a few
        # statements however many passages came due (a flood of strangers: a thousand)
        raised = raise_findings(
            conn, findings, now, lambda severity: escalation_delay(severity, self.thresholds)
        )
        report.opened += [r.alert_id for r in raised if r is not None and r.created]
        if last != wm["last_id"]:
            advance_watermark(conn, wm, now, last)
        # screened late after all (a delayed reading): nothing left to do. One look-up
        # per SCREENED_PER_QUERY open alerts, not one per alert: a flood of strangers'
        # passages keeps thousands of them open, and this runs on every tick
        waiting = [
            (alert.open_key, (alert.details or {}).get("passage_id"))
            for alert in store.open_alerts_of(conn, [AlertType.UNSCREENED_PASSAGE.value])
        ]
        screened = screened_passages(conn, [p for _, p in waiting if p is not None])
        late = [key for key, passage_id in waiting if passage_id in screened]
        if late:
            report.resolved += store.resolve_keys(conn, late, now, "screened_late")

    def _supervision(self, conn: Connection, now: datetime, report: TimerReport) -> None:
        """Overdue rectifications, resumed enterprises not checked that day."""
        opened, resolved = run_supervision(
            conn, now, self.thresholds.timezone, lambda f: self._raise(conn, f, now, repeat=False)
        )
        report.opened += opened
        report.resolved += resolved

    def _sensor_faults(self, conn: Connection, now: datetime, report: TimerReport) -> None:
        """A sensor fault ends when its checkpoint went a whole window without an
        implausible reading."""
        for alert in store.open_alerts_of(conn, [AlertType.SENSOR_FAULT.value]):
            if now - alert.last_seen_at < SENSOR_FAULT_WINDOW:
                continue
            recent = conn.execute(
                select(func.count()).where(
                    reading_t.c.checkpoint_id == alert.checkpoint_id,
                    reading_t.c.implausible.is_(True),
                    reading_t.c.received_at > now - SENSOR_FAULT_WINDOW,
                )
            ).scalar_one()
            if recent == 0:
                report.resolved += store.resolve_keys(
                    conn, [alert.open_key], now, "readings_plausible"
                )
