"""Webhook targets as an attacker with an admin key would try them: every internal
address, in every spelling, is refused when the route is saved and again when a
delivery is sent. No test here sends a packet to a refused address: they assert the
refusal (the one receiver is on loopback, allowed or not, and must get nothing)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from services.alerts import lifecycle, signing
from services.alerts.delivery import Deliverer
from services.alerts.egress import STRICT, EgressPolicy, RefusedTarget
from services.alerts.event_rules import Finding
from services.alerts.notifiers import WebhookNotifier
from services.alerts.store import raise_alert
from services.api.main import create_app
from services.core.db import utcnow
from services.core.models.alerts import AlertType, WebhookRouteCreate
from services.core.tables import outbox_t, route_t
from tests.support.api import assert_problem, bearer
from tests.support.webhooks import LOOPBACK_EGRESS, WebhookReceiver

REFUSED = [
    "http://127.0.0.1:6379/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0/",
    "http://0.0.0.0:22/",
    "http://[::]/",
    "http://[::1]:8000/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
    "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
    "http://[fe80::1%25eth0]/",
    "http://10.0.0.5:6379/",
    "http://172.16.0.1/",
    "http://192.168.1.1/admin",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://localhost:8000/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://metadata.google.internal/",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com:70/",
    "http:///nohost",
]
ACCEPTED = [
    "https://hooks.example.com/a",
    "http://93.184.216.34:8080/x",
    "https://[2606:4700::1111]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_targets_in_every_spelling_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget):
        STRICT.check_url(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_targets_are_accepted(url: str) -> None:
    STRICT.check_url(url)


def test_the_allow_list_names_exceptions_and_nothing_else() -> None:
    policy = EgressPolicy.parse("127.0.0.0/8, ::1, receiver.lan")
    policy.check_url("http://127.0.0.1:9000/hook")
    policy.check_url("http://0x7f000001/")  # the same address, spelled otherwise
    policy.check_url("http://[::1]/")
    policy.check_url("http://receiver.lan/")
    for url in ("http://10.0.0.5/", "http://169.254.169.254/", "http://[::ffff:a00:5]/"):
        with pytest.raises(RefusedTarget):
            policy.check_url(url)
    with pytest.raises(ValueError, match="neither a host name nor a CIDR"):
        EgressPolicy.parse("10.0.0.0/8, http://x/")


def test_names_are_checked_after_resolution_and_the_checked_address_is_used() -> None:
    """DNS is the resolver handed in (no lookup, no packet): every address of the answer
    must pass, and the request is aimed at the address that was checked."""

    def answers(*addresses: str) -> Any:
        return lambda host, port: list(addresses)

    pinned = STRICT.pin("https://user:pw@hooks.example.com/a?x=1", answers("93.184.216.34"))
    assert pinned.url == "https://user:pw@93.184.216.34:443/a?x=1"
    assert (pinned.host_header, pinned.tls_name) == ("hooks.example.com", "hooks.example.com")
    for bad in (["10.0.0.5"], ["93.184.216.34", "127.0.0.1"], ["::ffff:169.254.169.254"], []):
        with pytest.raises(RefusedTarget):
            STRICT.pin("https://rebinding.example.com/", answers(*bad))
    six = STRICT.pin("http://v6.example.com:8080/h", answers("2606:4700::1111"))
    assert six.url == "http://[2606:4700::1111]:8080/h" and six.host_header == "v6.example.com:8080"

    def broken(host: str, port: int) -> list[str]:
        raise UnicodeError("label too long")  # what the IDNA codec raises

    with pytest.raises(RefusedTarget, match="cannot resolve"):
        STRICT.pin("https://bad-idna.example.com/", broken)
    trusted = EgressPolicy.parse("receiver.lan")
    assert trusted.pin("http://receiver.lan/", answers("10.1.2.3")).url == "http://10.1.2.3:80/"


def test_the_api_refuses_internal_targets_by_default(
    seeded_engine: Engine, make_settings: Any, api_keys: dict[str, str]
) -> None:
    app = create_app(make_settings(webhook_allow_hosts=""))  # the shipped default
    admin = bearer(api_keys["admin"])
    with TestClient(app, raise_server_exceptions=False) as client:
        for url in REFUSED:
            body = {"name": "probe", "url": url}
            refused = client.post("/api/v1/webhooks", json=body, headers=admin)
            assert refused.status_code == 422, (url, refused.text)
        robot = {"name": "r", "kind": "wecom", "url": "http://10.0.0.5/cgi-bin/webhook/send?key=k"}
        assert_problem(client.post("/api/v1/webhooks", json=robot, headers=admin), 422)
        assert client.get("/api/v1/webhooks", headers=admin).json() == []
        created = client.post(
            "/api/v1/webhooks", json={"name": "ok", "url": ACCEPTED[0]}, headers=admin
        )
        assert created.status_code == 201, created.text
        route_id = created.json()["id"]
        moved = client.patch(
            f"/api/v1/webhooks/{route_id}",
            json={"url": "http://169.254.169.254/latest/meta-data/"},
            headers=admin,
        )
        body = assert_problem(moved, 422, "cloud metadata")
        assert body["errors"][0]["field"] == "body.url"
        assert client.get("/api/v1/webhooks", headers=admin).json()[0]["url"] == ACCEPTED[0]


def open_alert(engine: Engine) -> int:
    finding = Finding(AlertType.FEVER, "cp-001", "res-01", "p:1", "Fever 38.6 °C", {})
    with engine.begin() as conn:
        raised = raise_alert(conn, finding, utcnow(), timedelta(minutes=2))
    assert raised is not None
    return raised.alert_id


def test_delivery_rechecks_the_target_and_sends_nothing_to_a_refused_one(
    seeded_engine: Engine,
) -> None:
    """A route saved while loopback was allowed, delivered after the exception was
    removed (CPM_WEBHOOK_ALLOW_HOSTS emptied): refused at delivery, nothing sent."""
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret)
    try:
        with Session(seeded_engine) as session:
            lifecycle.create_route(
                session, WebhookRouteCreate(name="lan", url=receiver.url, secret=secret)
            )
            session.commit()
        open_alert(seeded_engine)
        deliverer = Deliverer(seeded_engine, {"webhook": WebhookNotifier(egress=STRICT)}, utcnow)
        try:
            deliverer.deliver_due()
        finally:
            deliverer.close()
        with seeded_engine.connect() as conn:
            rows = conn.execute(
                select(outbox_t.c.state, outbox_t.c.last_error).where(
                    outbox_t.c.channel == "webhook"
                )
            ).all()
        assert rows and all(state == "failed" for state, _ in rows)  # not retried
        assert all("127.0.0.1 is a loopback address" in str(error) for _, error in rows)
        assert receiver.received == []
    finally:
        receiver.stop()


def test_disabling_a_route_cancels_its_pending_deliveries(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret, start=False)  # down: deliveries stay pending
    admin = bearer(api_keys["admin"])
    created = client.post(
        "/api/v1/webhooks", json={"name": "duty", "url": receiver.url}, headers=admin
    ).json()
    open_alert(seeded_engine)
    open_alert_2 = Finding(AlertType.FEVER, "cp-002", "res-01", "p:2", "Fever 38.9 °C", {})
    with seeded_engine.begin() as conn:
        raise_alert(conn, open_alert_2, utcnow(), timedelta(minutes=2))
    deliveries = f"/api/v1/webhooks/{created['id']}/deliveries"
    assert [d["state"] for d in client.get(deliveries, headers=admin).json()] == ["pending"] * 2
    off = client.patch(f"/api/v1/webhooks/{created['id']}", json={"enabled": False}, headers=admin)
    assert off.status_code == 200, off.text
    listed = client.get(deliveries, headers=admin).json()
    assert [d["state"] for d in listed] == ["cancelled"] * 2
    assert all("disabled" in d["last_error"] for d in listed)
    deliverer = Deliverer(
        seeded_engine, {"webhook": WebhookNotifier(egress=LOOPBACK_EGRESS)}, utcnow
    )
    receiver.start()
    try:
        assert deliverer.deliver_due() == 0
        assert receiver.received == []
    finally:
        deliverer.close()
        receiver.stop()
    audit = client.get("/api/v1/audit?action=webhook_route.update", headers=admin).json()
    assert '"deliveries_cancelled": 2' in audit["items"][0]["detail"]


def test_deleting_a_route_cancels_its_pending_deliveries_and_is_audited(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret, start=False)  # down: deliveries stay pending
    admin = bearer(api_keys["admin"])
    url = receiver.url.replace("http://", "http://user:pw-secret@")
    created = client.post("/api/v1/webhooks", json={"name": "gone", "url": url}, headers=admin)
    route_id = created.json()["id"]
    open_alert(seeded_engine)
    officer = bearer(api_keys["officer"])
    assert_problem(client.delete(f"/api/v1/webhooks/{route_id}", headers=officer), 403)
    assert_problem(client.delete("/api/v1/webhooks/999999", headers=admin), 404)
    gone = client.delete(f"/api/v1/webhooks/{route_id}", headers=admin)
    assert gone.status_code == 204, gone.text
    assert client.get("/api/v1/webhooks", headers=admin).json() == []
    assert_problem(client.get(f"/api/v1/webhooks/{route_id}/deliveries", headers=admin), 404)
    with seeded_engine.connect() as conn:
        rows = conn.execute(
            select(outbox_t.c.state, outbox_t.c.route_id, outbox_t.c.last_error).where(
                outbox_t.c.channel == "webhook"
            )
        ).all()
    assert [(state, rid) for state, rid, _ in rows] == [("cancelled", None)]
    assert "deleted" in rows[0][2]
    deliverer = Deliverer(
        seeded_engine, {"webhook": WebhookNotifier(egress=LOOPBACK_EGRESS)}, utcnow
    )
    receiver.start()
    try:
        assert deliverer.deliver_due() == 0
        assert receiver.received == []
    finally:
        deliverer.close()
        receiver.stop()
    audit = client.get("/api/v1/audit?action=webhook_route.delete", headers=admin).json()
    detail = json.loads(audit["items"][0]["detail"])
    assert detail["deliveries_cancelled"] == 1 and detail["name"] == "gone"
    assert "pw-secret" not in audit["items"][0]["detail"]
    assert_problem(client.delete(f"/api/v1/webhooks/{route_id}", headers=admin), 404)


def test_credentials_in_a_url_are_kept_but_never_shown_or_audited(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    admin = bearer(api_keys["admin"])
    url = "http://hook-user:s3cret-Passw0rd@127.0.0.1:9/hook?token=tok-0123456789abcdef"
    created = client.post("/api/v1/webhooks", json={"name": "basic", "url": url}, headers=admin)
    assert created.status_code == 201, created.text
    shown = [
        created.text,
        client.get("/api/v1/webhooks", headers=admin).text,
        client.patch(
            f"/api/v1/webhooks/{created.json()['id']}", json={"url": url}, headers=admin
        ).text,
        json.dumps(client.get("/api/v1/audit", headers=admin).json()),
    ]
    for text in shown:
        assert "s3cret-Passw0rd" not in text and "hook-user" not in text
        assert "0123456789abcdef" not in text
    assert "***@127.0.0.1:9" in created.json()["url"]
    with seeded_engine.connect() as conn:
        assert conn.execute(select(route_t.c.url)).scalar_one() == url  # kept for sending
