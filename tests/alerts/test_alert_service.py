"""The alert service against the real databases, driven by hand with an injected clock:
each rule fires once per dedup key and resolves when it should; lifecycle, escalation,
silences; crash-safety of the watermark."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from services.alerts import lifecycle, raising, timed_processor
from services.alerts.service import AlertService
from services.core.models import DeviceStatusEvent
from services.core.models.alerts import SilenceCreate, WebhookRouteCreate
from services.core.tables import watermark_t
from tests.support.alerts import (
    T0,
    Clock,
    add_passage,
    add_reading,
    alerts,
    history,
    outbox,
    set_presence,
    set_state,
    site_of,
)


def test_fever_opens_one_alert_per_person_and_a_normal_recheck_resolves_it(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    p1 = add_passage(seeded_engine, screened=True)
    add_reading(seeded_engine, temp_c=38.4, passage_id=p1)
    add_reading(seeded_engine, ts=T0 + timedelta(seconds=60), temp_c=38.1, passage_id=p1)
    service.process()
    (fever,) = alerts(seeded_engine, "fever")
    assert fever.status == "open" and fever.occurrences == 2 and fever.severity == "critical"
    assert fever.subject == "h:" + "ab" * 8 and fever.details["person"] == "ab" * 8
    service.process()  # nothing new: nothing changes
    assert alerts(seeded_engine, "fever")[0].occurrences == 2

    p2 = add_passage(seeded_engine, ts=T0 + timedelta(minutes=5))
    add_reading(
        seeded_engine,
        ts=T0 + timedelta(minutes=5),
        temp_c=36.6,
        passage_id=p2,
        operator="st-001-1",  # the handheld names who re-checked: the case is decided
    )
    clock.advance(300)
    service.process()
    (fever,) = alerts(seeded_engine, "fever")
    assert fever.status == "resolved" and fever.outcome == "recheck_normal"
    assert history(seeded_engine, fever.id) == ["opened", "repeated", "resolved"]
    assert [(o.channel, o.event) for o in outbox(seeded_engine)] == [
        ("mqtt", "opened"),
        ("mqtt", "resolved"),
    ]


def test_recheck_by_entry_msg_id_and_not_after_the_window(
    service: AlertService, seeded_engine: Engine
) -> None:
    add_reading(seeded_engine, temp_c=38.0, entry_msg_id="gate-1")
    add_reading(seeded_engine, cp="cp-002", temp_c=38.0, entry_msg_id="gate-2")
    service.process()
    add_reading(
        seeded_engine, ts=T0 + timedelta(minutes=3), entry_msg_id="gate-1", operator="st-001-1"
    )
    add_reading(
        seeded_engine,
        cp="cp-002",
        ts=T0 + timedelta(minutes=11),
        entry_msg_id="gate-2",
        operator="st-002-1",
    )
    service.process()
    by_cp = {a.checkpoint_id: a for a in alerts(seeded_engine, "fever")}
    assert by_cp["cp-001"].outcome == "recheck_normal"
    assert by_cp["cp-002"].status == "open"


def test_breach_and_unregistered_entry_repeat_until_resolved_then_open_anew(
    service: AlertService, seeded_engine: Engine
) -> None:
    for _ in range(2):
        add_passage(seeded_engine, quarantined=True, registration="revoked_pass")
    service.process()
    breach, unregistered = alerts(seeded_engine)
    assert (breach.type, breach.occurrences) == ("quarantine_breach", 2)
    assert (unregistered.type, unregistered.details["registration"]) == (
        "unregistered_entry",
        "revoked_pass",
    )
    with Session(seeded_engine) as session:
        lifecycle.resolve(session, breach.id, "st-001-1", "escorted_home", "back in quarantine")
        session.commit()
    add_passage(seeded_engine, quarantined=True)
    service.process()
    breaches = alerts(seeded_engine, "quarantine_breach")
    assert [a.status for a in breaches] == ["resolved", "open"]
    assert breaches[0].resolved_by == "st-001-1" and breaches[0].note == "back in quarantine"


def test_a_crash_mid_batch_changes_nothing_and_the_retry_alerts_once(
    service: AlertService, seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        add_reading(seeded_engine, temp_c=39.0)
    # the batch's outbox rows are queued after its alerts were written: dying there
    # must roll the alerts back too
    real = raising.enqueue_alerts

    def dying(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("process killed here")

    monkeypatch.setattr(raising, "enqueue_alerts", dying)
    with pytest.raises(RuntimeError):
        service.process()
    assert alerts(seeded_engine) == [] and outbox(seeded_engine) == []
    monkeypatch.setattr(raising, "enqueue_alerts", real)
    service.process()
    assert len(alerts(seeded_engine, "fever")) == 3
    assert len(outbox(seeded_engine)) == 3


def test_two_workers_processing_at_once_alert_each_fever_once(
    make_settings: Callable[..., Any], seeded_engine: Engine, clock: Clock
) -> None:
    for i in range(60):
        add_reading(seeded_engine, cp=f"cp-{1 + i % 30:03d}", temp_c=38.5, entry_msg_id=f"x{i}")
    workers = [AlertService(make_settings(), seeded_engine, clock=clock) for _ in range(2)]
    errors: list[BaseException] = []

    def work(worker: AlertService) -> None:
        for _ in range(200):
            try:
                if worker.processor.run_once() == 0:
                    return
            except OperationalError:  # SQLite: the other writer won this round
                continue
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    workers[0].process()
    fevers = alerts(seeded_engine, "fever")
    assert len(fevers) == 60 and all(a.occurrences == 1 for a in fevers)


def test_staffing_gap_after_grace_once_and_resolved_when_staff_return(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    set_presence(seeded_engine, "cp-003", "st-003-1", False, T0)
    clock.advance(299)
    service.run_timers()
    assert alerts(seeded_engine, "staffing_gap") == []
    clock.advance(2)
    service.run_timers()
    service.run_timers()
    (gap,) = alerts(seeded_engine, "staffing_gap")
    assert gap.occurrences == 1 and gap.checkpoint_id == "cp-003"
    set_presence(seeded_engine, "cp-003", "st-003-2", True, clock.now)
    service.run_timers()
    (gap,) = alerts(seeded_engine, "staffing_gap")
    assert gap.status == "resolved" and gap.outcome == "staff_on_duty"


def test_device_offline_by_status_row_or_silence_and_back_online(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    service.run_timers()  # the rules are watching from T0
    set_state(seeded_engine, "cp-004", device_state="offline", state_since=T0, last_seen_at=T0)
    with Session(seeded_engine) as session:
        session.add(DeviceStatusEvent(checkpoint_id="cp-004", ts=T0, device_ts=T0, state="offline"))
        session.commit()
    set_state(seeded_engine, "cp-005", device_state="online", last_seen_at=T0)
    service.process()
    service.run_timers()
    assert alerts(seeded_engine, "device_offline") == []  # not yet confirmed
    clock.advance(60)  # the confirmation time: the reported offline is now an alert
    service.run_timers()
    (will,) = alerts(seeded_engine, "device_offline")
    assert will.checkpoint_id == "cp-004" and will.details["last_seen_at"] == T0.isoformat()
    clock.advance(31)  # cp-005 silent past 90 s: offline, confirmed 60 s later
    service.run_timers()
    assert [a.checkpoint_id for a in alerts(seeded_engine, "device_offline")] == ["cp-004"]
    clock.advance(60)
    service.run_timers()
    offline = alerts(seeded_engine, "device_offline")
    assert [(a.checkpoint_id, a.occurrences) for a in offline] == [("cp-004", 1), ("cp-005", 1)]
    # the silence is in the status history (device uptime counts it as offline)
    with Session(seeded_engine) as session:
        rows = session.exec(
            select(DeviceStatusEvent).where(DeviceStatusEvent.checkpoint_id == "cp-005")
        ).all()
        assert [(r.state, r.ts) for r in rows] == [("silent", T0 + timedelta(seconds=90))]
    set_state(seeded_engine, "cp-004", device_state="online", last_seen_at=clock.now)
    set_state(seeded_engine, "cp-005", last_seen_at=clock.now)
    service.run_timers()
    assert {a.outcome for a in alerts(seeded_engine, "device_offline")} == {"device_online"}
    with Session(seeded_engine) as session:
        back = session.exec(
            select(DeviceStatusEvent)
            .where(DeviceStatusEvent.checkpoint_id == "cp-005")
            .order_by(col(DeviceStatusEvent.ts))
        ).all()
        assert [(r.state, r.ts) for r in back][-1] == ("online", clock.now)


def test_a_restart_pages_nobody_for_devices_that_reconnect_within_the_confirmation(
    seeded_engine: Engine, make_settings: Callable[..., Any], clock: Clock
) -> None:
    # the whole system was down for an hour: every device was last heard then, and its
    # goodbye (`offline`) is replayed to ingest on restart, just before its `online`
    for cp in ("cp-001", "cp-002", "cp-003"):
        set_state(
            seeded_engine,
            cp,
            device_state="offline",
            state_since=T0 - timedelta(hours=1),
            last_seen_at=T0 - timedelta(hours=1),
        )
    service = AlertService(make_settings(), seeded_engine, clock=clock)
    service.process()
    service.run_timers()
    clock.advance(30)  # the devices reconnect
    for cp in ("cp-001", "cp-002", "cp-003"):
        set_state(seeded_engine, cp, device_state="online", state_since=clock.now)
        set_state(seeded_engine, cp, last_seen_at=clock.now)
    service.run_timers()
    clock.advance(120)
    service.run_timers()
    assert alerts(seeded_engine, "device_offline") == []


def test_clock_skew_from_state_or_adjusted_rows_resolves_when_measured_good(
    service: AlertService, seeded_engine: Engine
) -> None:
    add_passage(seeded_engine, cp="cp-006", clock_adjusted=True)
    add_passage(seeded_engine, cp="cp-006", clock_adjusted=True)
    service.process()
    service.run_timers()  # no skew on record: stays open
    (skew,) = alerts(seeded_engine, "clock_skew")
    assert skew.status == "open" and skew.occurrences == 2
    set_state(seeded_engine, "cp-006", clock_skew_s=3.0)
    set_state(seeded_engine, "cp-007", clock_skew_s=-400.0)
    service.run_timers()
    by_cp = {a.checkpoint_id: a for a in alerts(seeded_engine, "clock_skew")}
    assert by_cp["cp-006"].outcome == "clock_ok" and by_cp["cp-007"].status == "open"


def test_unscreened_passage_when_its_window_closes_and_resolved_if_screened_late(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    late = add_passage(seeded_engine, cp="cp-008", screened=False)
    add_passage(seeded_engine, cp="cp-008", screened=False, kind="vehicle", id_hash=None)
    add_passage(seeded_engine, cp="cp-008", screened=True)
    clock.advance(30)
    service.run_timers()
    assert alerts(seeded_engine, "unscreened_passage") == []
    clock.advance(6)
    service.run_timers()
    service.run_timers()
    (alert,) = alerts(seeded_engine, "unscreened_passage")
    assert alert.subject == f"passage:{late}" and alert.severity == "warning"
    with Session(seeded_engine) as session:
        from services.core.models import Passage

        row = session.get(Passage, late)
        assert row is not None
        row.screened = True
        session.add(row)
        session.commit()
    service.run_timers()
    assert alerts(seeded_engine, "unscreened_passage")[0].outcome == "screened_late"


def test_timed_rules_roll_back_when_the_unscreened_watermark_moved_under_them(
    service: AlertService, seeded_engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compare-and-set on the watermark is checked: a pass that lost the race raises
    nothing (the winner did), instead of raising the same unscreened alert again."""
    add_passage(seeded_engine, cp="cp-008", screened=False)
    clock.advance(36)
    real = timed_processor.read_watermark

    def raced(conn: Connection, name: str) -> Any:
        read = real(conn, name)
        # another worker advances the watermark after ours was read
        conn.execute(
            update(watermark_t)
            .where(watermark_t.c.name == name)
            .values(version=read["version"] + 1)
        )
        return read

    monkeypatch.setattr(timed_processor, "read_watermark", raced)
    report = service.run_timers()
    assert report.opened == [] and alerts(seeded_engine, "unscreened_passage") == []
    monkeypatch.setattr(timed_processor, "read_watermark", real)
    assert len(service.run_timers().opened) == 1
    assert len(alerts(seeded_engine, "unscreened_passage")) == 1


def test_sensor_fault_from_the_third_implausible_reading_and_its_end(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    for minute in (0, 4, 8):
        add_reading(seeded_engine, cp="cp-009", ts=T0 + timedelta(minutes=minute), temp_c=12.0)
    add_reading(seeded_engine, cp="cp-010", temp_c=12.0)
    service.process()
    (fault,) = alerts(seeded_engine, "sensor_fault")
    assert fault.checkpoint_id == "cp-009" and alerts(seeded_engine, "fever") == []
    clock.advance(8 * 60 + 599)
    service.run_timers()
    assert alerts(seeded_engine, "sensor_fault")[0].status == "open"
    clock.advance(2)
    service.run_timers()
    assert alerts(seeded_engine, "sensor_fault")[0].outcome == "readings_plausible"


def test_escalation_repeats_to_supervisors_until_acknowledged(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    with Session(seeded_engine) as session:
        duty = lifecycle.create_route(session, WebhookRouteCreate(name="duty", url="http://d/x"))
        sup = lifecycle.create_route(
            session, WebhookRouteCreate(name="sup", url="http://s/x", escalation=True)
        )
        other = lifecycle.create_route(
            session, WebhookRouteCreate(name="other", url="http://o/x", site_id="com-02")
        )
        session.commit()
        ids = {"duty": duty.id, "sup": sup.id, "other": other.id}
    add_reading(seeded_engine, temp_c=38.9)
    service.process()
    (fever,) = alerts(seeded_engine)
    clock.advance(119)
    assert service.run_timers().escalated == []
    clock.advance(2)
    assert service.run_timers().escalated == [fever.id]
    assert service.run_timers().escalated == []
    clock.advance(121)
    assert service.run_timers().escalated == [fever.id]
    with Session(seeded_engine) as session:
        lifecycle.acknowledge(session, fever.id, "st-001-1", now=clock.now)
        session.commit()
    clock.advance(600)
    assert service.run_timers().escalated == []
    (fever,) = alerts(seeded_engine)
    assert fever.escalation_level == 2 and fever.acknowledged_by == "st-001-1"
    sent = [(o.channel, o.route_id, o.event) for o in outbox(seeded_engine)]
    assert sent == [
        ("mqtt", None, "opened"),
        ("webhook", ids["duty"], "opened"),
        ("mqtt", None, "escalated"),
        ("webhook", ids["sup"], "escalated"),
        ("mqtt", None, "escalated"),
        ("webhook", ids["sup"], "escalated"),
        ("mqtt", None, "acknowledged"),
        ("webhook", ids["duty"], "acknowledged"),
        ("webhook", ids["sup"], "acknowledged"),
    ]


def test_a_silence_records_but_does_not_deliver_or_escalate(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    site = site_of(seeded_engine, "cp-011")
    with Session(seeded_engine) as session:
        silence = lifecycle.create_silence(
            session,
            SilenceCreate(
                site_id=site,
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                reason="gate maintenance",
            ),
            "sup-1",
            now=clock.now,
        )
        session.commit()
        silence_id = silence.id
    add_reading(seeded_engine, cp="cp-011", temp_c=38.0)
    service.process()
    (alert,) = alerts(seeded_engine)
    assert alert.silenced and alert.details["silence_id"] == silence_id
    clock.advance(3600 - 1)
    assert service.run_timers().escalated == [] and outbox(seeded_engine) == []
    with Session(seeded_engine) as session:
        lifecycle.lift_silence(session, silence_id, "sup-1", now=clock.now)
        session.commit()
    add_reading(seeded_engine, cp="cp-011", temp_c=38.0, ts=clock.now)
    service.process()
    assert [a.silenced for a in alerts(seeded_engine)] == [True, False]
    assert len(outbox(seeded_engine)) == 1


def test_bad_transitions_and_bad_silences_are_refused(
    service: AlertService, seeded_engine: Engine, clock: Clock
) -> None:
    add_reading(seeded_engine, temp_c=38.0)
    service.process()
    (alert,) = alerts(seeded_engine)
    with Session(seeded_engine) as session:
        lifecycle.acknowledge(session, alert.id, "a")
        with pytest.raises(lifecycle.InvalidTransition):
            lifecycle.acknowledge(session, alert.id, "b")
        with pytest.raises(lifecycle.InvalidTransition):
            lifecycle.resolve(session, alert.id, "a", "  ")
        lifecycle.resolve(session, alert.id, "a", "sent_to_fever_clinic")
        with pytest.raises(lifecycle.InvalidTransition):
            lifecycle.resolve(session, alert.id, "a", "again")
        with pytest.raises(lifecycle.AlertNotFound):
            lifecycle.acknowledge(session, 999_999, "a")
        with pytest.raises(lifecycle.SilenceNotFound):
            lifecycle.lift_silence(session, 999_999, "a")
        window = {"starts_at": T0, "ends_at": T0 + timedelta(hours=1), "reason": "x"}
        for bad, now in (
            (SilenceCreate(**window), T0),  # neither site nor checkpoint
            (SilenceCreate(checkpoint_id="cp-001", **window), T0 + timedelta(hours=2)),
            (SilenceCreate(checkpoint_id="cp-001", **{**window, "ends_at": T0}), T0),
        ):
            with pytest.raises(lifecycle.InvalidSilence):
                lifecycle.create_silence(session, bad, "a", now=now)
        for bad_route in (
            WebhookRouteCreate(name="r", url="ftp://x"),
            WebhookRouteCreate(name="r", url="http://x", min_severity="loud"),
            WebhookRouteCreate(name="r", url="http://x", types=["fever", "nope"]),
            WebhookRouteCreate(name="r", url="http://x", secret="plain"),
        ):
            with pytest.raises(lifecycle.InvalidRoute):
                lifecycle.create_route(session, bad_route)
        session.commit()
    assert history(seeded_engine, alert.id) == ["opened", "acknowledged", "resolved"]
