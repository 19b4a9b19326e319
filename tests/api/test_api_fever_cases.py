"""A fever is a case (both databases): the alert opens a case that asks for a re-check;
a normal re-check without a named operator is recorded but decides nothing; the API
refuses to resolve a fever without a disposition from the list and a known deciding
staff member; metrics give the time from fever to disposition per checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from services.alerts.service import AlertService
from services.core.tables import fever_case_t
from tests.support.alerts import Clock, add_passage, add_reading, alerts
from tests.support.api import bearer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def case(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(fever_case_t)).one()


def test_fever_case_recheck_disposition_and_metrics(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
    make_settings: Callable[..., Any],
) -> None:
    service = AlertService(make_settings(recheck_window_s=600), seeded_engine, clock=Clock(T0))
    p1 = add_passage(seeded_engine, ts=T0)
    add_reading(seeded_engine, ts=T0, temp_c=38.2, passage_id=p1)
    service.process()
    (fever,) = alerts(seeded_engine, "fever")
    opened = case(seeded_engine)
    assert (opened.alert_id, opened.temp_c, opened.disposition) == (fever.id, 38.2, None)
    assert opened.recheck_due_at == T0 + timedelta(minutes=10)

    # a normal re-check with no operator named: recorded, the fever stays open
    p2 = add_passage(seeded_engine, ts=T0 + timedelta(minutes=4))
    add_reading(seeded_engine, ts=T0 + timedelta(minutes=4), temp_c=36.7, passage_id=p2)
    service.process()
    assert alerts(seeded_engine, "fever")[0].status == "open"
    rechecked = case(seeded_engine)
    assert (rechecked.recheck_temp_c, rechecked.disposition) == (36.7, None)

    officer = bearer(api_keys["officer"])
    url = f"/api/v1/alerts/{fever.id}/resolve"
    refused = [
        {"outcome": "false_alarm", "decided_by": "st-001-1"},  # not a disposition
        {"outcome": "sent_to_fever_clinic"},  # nobody decided
        {"outcome": "sent_to_fever_clinic", "decided_by": "nobody-7"},  # unknown staff
    ]
    for body in refused:
        response = client.post(url, json=body, headers=officer)
        assert response.status_code == 422, (body, response.text)
    assert alerts(seeded_engine, "fever")[0].status == "open"

    done = client.post(
        url, json={"outcome": "sent_to_fever_clinic", "decided_by": "st-001-2"}, headers=officer
    )
    assert done.status_code == 200 and done.json()["outcome"] == "sent_to_fever_clinic"
    decided = case(seeded_engine)
    assert (decided.disposition, decided.decided_by) == ("sent_to_fever_clinic", "st-001-2")

    window = {"from": (T0 - timedelta(hours=1)).isoformat()}
    cases = client.get("/api/v1/fever-cases", params=window, headers=officer).json()
    assert [(c["alert_id"], c["recheck_overdue"]) for c in cases] == [(fever.id, False)]
    elsewhere = bearer(api_keys["duty"])  # covers cp-001 and cp-002: sees this case
    assert len(client.get("/api/v1/fever-cases", params=window, headers=elsewhere).json()) == 1
    (figures,) = client.get("/api/v1/fever-cases/metrics", params=window, headers=officer).json()
    assert (figures["checkpoint_id"], figures["cases"], figures["decided"]) == ("cp-001", 1, 1)
    assert figures["dispositions"] == {"sent_to_fever_clinic": 1}
    expected = (decided.decided_at - T0).total_seconds() / 60
    assert abs(figures["median_minutes_to_disposition"] - expected) < 0.01
