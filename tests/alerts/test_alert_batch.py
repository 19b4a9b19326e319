"""A batch's findings raised set-based (services/alerts/raising.py) against the real
databases: the same alerts, history and outbox rows as raising them one by one, and a
number of statements that does not grow with the batch."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from services.alerts import lifecycle
from services.alerts.event_rules import AlertType, Finding
from services.alerts.outbox import message_body
from services.alerts.raising import raise_findings
from services.alerts.service import AlertService
from services.core.models.alerts import AlertEvent, SilenceCreate
from services.core.tables import alert_t, passage_t, reading_t
from tests.support.alerts import T0, alerts, history, outbox, site_of, statements

DELAY = timedelta(minutes=2)


def stranger(
    engine: Engine, cp: str, subject: str, kind: AlertType = AlertType.UNREGISTERED_ENTRY
) -> Finding:
    return Finding(kind, cp, site_of(engine, cp), subject, f"{kind} {subject} at {cp}", {})


def raise_batch(engine: Engine, findings: list[Finding], repeat: bool = True) -> list[Any]:
    with engine.begin() as conn:
        return raise_findings(conn, findings, T0, lambda _: DELAY, repeat=repeat)


def notes(engine: Engine, alert_id: int) -> list[str | None]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT note FROM alert_history WHERE alert_id = {int(alert_id)} ORDER BY id"
        ).all()
    return [r[0] for r in rows]


def test_duplicate_keys_in_one_batch_make_one_alert_counting_them(seeded_engine: Engine) -> None:
    a = stranger(seeded_engine, "cp-001", "h:a")
    b = stranger(seeded_engine, "cp-002", "h:b")
    raised = raise_batch(seeded_engine, [a, b, a, a])
    assert [(r.created, r.silenced) for r in raised] == [(True, False)] * 2 + [(False, False)] * 2
    assert raised[0].alert_id == raised[2].alert_id == raised[3].alert_id != raised[1].alert_id
    by_subject = {x.subject: x for x in alerts(seeded_engine)}
    assert {s: x.occurrences for s, x in by_subject.items()} == {"h:a": 3, "h:b": 1}
    alert_a = by_subject["h:a"]
    assert history(seeded_engine, alert_a.id) == ["opened", "repeated", "repeated"]
    assert notes(seeded_engine, alert_a.id) == [None, "#2", "#3"]
    assert sorted(o.alert_id for o in outbox(seeded_engine)) == sorted(
        r.alert_id for r in raised[:2]
    )


def test_a_silenced_checkpoint_in_a_batch_gets_history_but_no_outbox(
    seeded_engine: Engine,
) -> None:
    quiet, loud = "cp-011", "cp-001"
    assert site_of(seeded_engine, quiet) != site_of(seeded_engine, loud)
    with Session(seeded_engine) as session:
        silence = lifecycle.create_silence(
            session,
            SilenceCreate(
                checkpoint_id=quiet, starts_at=T0, ends_at=T0 + timedelta(hours=1), reason="works"
            ),
            "sup-1",
            now=T0,
        )
        session.commit()
        silence_id = silence.id
    raised = raise_batch(
        seeded_engine,
        [stranger(seeded_engine, quiet, "h:q"), stranger(seeded_engine, loud, "h:l")],
    )
    assert [r.silenced for r in raised] == [True, False]
    quiet_alert, loud_alert = (
        next(a for a in alerts(seeded_engine) if a.checkpoint_id == cp) for cp in (quiet, loud)
    )
    assert quiet_alert.details["silence_id"] == silence_id
    assert quiet_alert.next_escalation_at is None and loud_alert.next_escalation_at is not None
    assert notes(seeded_engine, quiet_alert.id) == [f"silenced by silence {silence_id}"]
    assert [o.alert_id for o in outbox(seeded_engine)] == [loud_alert.id]


def test_new_and_repeated_keys_mixed_and_repeat_false(seeded_engine: Engine) -> None:
    a = stranger(seeded_engine, "cp-001", "h:a")
    c = stranger(seeded_engine, "cp-001", "h:c")
    d = stranger(seeded_engine, "cp-003", "h:d")
    (first,) = raise_batch(seeded_engine, [a])
    raised = raise_batch(seeded_engine, [a, c, a])
    assert [r.created for r in raised] == [False, True, False]
    assert raised[0].alert_id == raised[2].alert_id == first.alert_id
    assert history(seeded_engine, first.alert_id) == ["opened", "repeated", "repeated"]
    assert notes(seeded_engine, first.alert_id) == [None, "#2", "#3"]
    # conditions: an open alert is left alone, a second finding of a new key is no repeat
    raised = raise_batch(seeded_engine, [a, d, d], repeat=False)
    assert raised[0] is None and raised[1] is not None and raised[1].created and raised[2] is None
    by_subject = {x.subject: x.occurrences for x in alerts(seeded_engine)}
    assert by_subject == {"h:a": 3, "h:c": 1, "h:d": 1}
    assert len(outbox(seeded_engine)) == 3  # one opened message per alert, no route


def test_the_most_severe_alerts_of_a_batch_are_queued_first(seeded_engine: Engine) -> None:
    findings = [stranger(seeded_engine, "cp-001", f"h:{n}") for n in range(5)]
    findings.insert(3, stranger(seeded_engine, "cp-002", "h:q", AlertType.QUARANTINE_BREACH))
    raise_batch(seeded_engine, findings)
    first = outbox(seeded_engine)[0]
    (breach,) = alerts(seeded_engine, "quarantine_breach")
    assert first.alert_id == breach.id


def store_passages(engine: Engine, first: int, count: int, **values: Any) -> None:
    rows = [
        {
            "checkpoint_id": "cp-001",
            "msg_id": f"p-{n}",
            "ts": T0,
            "device_ts": T0,
            "received_at": T0,
            "direction": "in",
            "kind": "person",
            "registration": "unregistered",
            "screened": True,
            "id_hash": f"{n:016x}" + "0" * 48,  # the person key is its first 16
            "id_masked": "4403**********123X",
            **values,
        }
        for n in range(first, first + count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(passage_t), rows)


def store_fevers(engine: Engine, first: int, count: int) -> None:
    rows = [
        {
            "checkpoint_id": f"cp-{1 + n % 20:03d}",
            "msg_id": f"f-{n}",
            "ts": T0,
            "device_ts": T0,
            "received_at": T0,
            "direction": "in",
            "temp_c": 38.5,
            "fever": True,
            "implausible": False,
            "entry_msg_id": f"gate-{n}",
        }
        for n in range(first, first + count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(reading_t), rows)


def test_statements_per_batch_stay_flat_as_the_batch_grows(
    service: AlertService, seeded_engine: Engine
) -> None:
    counted: dict[str, list[int]] = {"passage": [], "reading": []}
    first = 0
    for size in (5, 50, 400):
        store_passages(seeded_engine, first, size)
        store_fevers(seeded_engine, first, size)
        first += size
        for source in counted:
            with statements(seeded_engine) as sent:
                assert service.processor.process(source) == size
            counted[source].append(len(sent))
    assert len(alerts(seeded_engine, "unregistered_entry")) == 455
    assert len(alerts(seeded_engine, "fever")) == 455
    for source, counts in counted.items():
        assert counts[0] == counts[1] == counts[2], (source, counts)
        assert counts[0] <= 14, (source, counts)


def test_a_fever_behind_500_strangers_is_raised_in_the_same_pass(
    service: AlertService, seeded_engine: Engine
) -> None:
    store_passages(seeded_engine, 0, 500)
    store_fevers(seeded_engine, 0, 1)
    assert service.processor.run_once() == 501
    (fever,) = alerts(seeded_engine, "fever")
    assert len(alerts(seeded_engine, "unregistered_entry")) == 500
    assert fever.id in {o.alert_id for o in outbox(seeded_engine)}


def test_messages_of_a_batch_carry_the_alerts_as_stored(seeded_engine: Engine) -> None:
    findings = [stranger(seeded_engine, f"cp-00{n}", f"h:{n}") for n in range(1, 4)]
    raise_batch(seeded_engine, findings)
    with seeded_engine.connect() as conn:
        stored = {row.id: row._asdict() for row in conn.execute(select(alert_t))}
    messages = outbox(seeded_engine)
    assert len(messages) == 3
    for message in messages:
        body = json.loads(message.payload)
        expected = json.loads(message_body(stored[message.alert_id], AlertEvent.OPENED, T0))
        assert body == expected
