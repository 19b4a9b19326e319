"""The screening-quality pass of the timed rules, on both databases: a pro-forma lane
raises one `screening_suspect` alert with its evidence and is marked suspect for the
board; an honest lane is judged ok; nothing is raised twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from services.alerts.timed_processor import Timers
from services.alerts.timed_rules import Thresholds
from services.core.tables import screening_quality_t
from tests.support.alerts import T0, Clock, add_passage, add_reading, alerts

HONEST = [36.1, 36.5, 36.8, 36.3, 36.6, 36.9, 36.2, 36.4, 36.7, 36.5] * 3


def test_pro_forma_lane_is_flagged_with_evidence_and_honest_lane_is_ok(
    seeded_engine: Engine, make_settings: Callable[..., Any]
) -> None:
    for i, temp in enumerate(HONEST):
        at = T0 + timedelta(seconds=8 * i)
        passage = add_passage(seeded_engine, cp="cp-001", ts=at)
        add_reading(
            seeded_engine, cp="cp-001", ts=at, received_at=at, temp_c=temp, passage_id=passage
        )
        passage = add_passage(seeded_engine, cp="cp-002", ts=at)
        add_reading(
            seeded_engine, cp="cp-002", ts=at, received_at=at, temp_c=36.5, passage_id=passage
        )
    clock = Clock(T0 + timedelta(minutes=5))
    timers = Timers(seeded_engine, Thresholds.from_settings(make_settings()), clock)
    report = timers.run()
    (alert,) = alerts(seeded_engine, "screening_suspect")
    assert report.opened == [alert.id]
    assert (alert.checkpoint_id, alert.subject, alert.severity) == ("cp-002", "lane:in", "major")
    checks = {c["check"]: c for c in alert.details["checks"]}
    assert set(checks) == {"identical_run", "spread_c"}
    assert checks["identical_run"]["statistic"] == 30
    assert len(alert.details["readings"]) == 30
    with seeded_engine.connect() as conn:
        verdicts = {
            r.checkpoint_id: r.status for r in conn.execute(select(screening_quality_t)).all()
        }
    assert verdicts == {"cp-001": "ok", "cp-002": "suspect"}

    clock.advance(120)  # judged again: the alert stays the one alert
    add_reading(seeded_engine, cp="cp-002", ts=clock.now, received_at=clock.now, temp_c=36.5)
    timers.run()
    assert len(alerts(seeded_engine, "screening_suspect")) == 1
