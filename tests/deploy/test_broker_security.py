"""Broker security, tried as an attacker holding one device's own credentials against
the production configuration (mosquitto/mosquitto.conf, ports and paths rewritten)
with accounts from `cpmon devices provision`. Every attack is counted against the
messages of the legitimate devices: nothing they send may be lost or doubled."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from services.deploy.mosquitto import mosquitto_binary
from services.deploy.tls import provision_tls
from services.ingest.service import IngestService
from tests.deploy.broker_harness import CHECKPOINTS, Client, SecureBroker, start_secure_broker
from tests.support import count, wait_until

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")

ATTACKER = "cp-001"  # a device whose credentials were stolen
VICTIM = "cp-002"  # a legitimate device


@pytest.fixture
def broker(tmp_path: Path, topic_prefix: str) -> Iterator[SecureBroker]:
    secure = start_secure_broker(tmp_path, topic_prefix, CHECKPOINTS)
    yield secure
    secure.process.stop()


def login(broker: SecureBroker, username: str, **options: Any) -> Client:
    client = Client(broker.port, username, broker.passwords[username], **options)
    assert not client.refused, f"{username} refused: {client.reason}"
    return client


def as_attacker(broker: SecureBroker, **options: Any) -> Client:
    return Client(broker.port, ATTACKER, broker.passwords[ATTACKER], **options)


def reading(n: int) -> bytes:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"msg_id": f"r{n}", "ts": stamp, "temp_c": 36.5, "direction": "in"}).encode()


def test_a_device_cannot_take_any_other_client_id(broker: SecureBroker, topic_prefix: str) -> None:
    # ingest holds a persistent session with messages queued in it
    ingest = login(broker, "cpm-ingest-1", persistent=True)
    assert ingest.subscribe(f"$share/ingest/{topic_prefix}/cp/#").value == 1
    ingest.close()
    victim = login(broker, VICTIM)
    for n in range(20):
        victim.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(n))

    for client_id in ("cpm-ingest-1", "cpm-ingest-2", "cpm-alerts-1", VICTIM, "", "cp-001 "):
        attempt = as_attacker(broker, client_id=client_id)
        assert attempt.refused, f"{ATTACKER} connected as {client_id!r}"
        assert attempt.reason.getName() == "Not authorized"
        attempt.close()
    # the real cp-002 was not kicked off, and its will was not fired
    assert victim.client.is_connected() and not victim.disconnected.is_set()

    back = login(broker, "cpm-ingest-1", persistent=True)
    assert back.session_present, "the attacker replaced ingest's session"
    received = back.drain(expect=20)
    assert len(received) == 20
    for client in (back, victim):
        client.close()


REFUSED_FILTERS = [
    "$share/ingest/{p}/cp/#",
    "$share/ingest/{p}/cp/+/+",
    "$share/other/{p}/cp/#",
    "{p}/cp/#",
    "{p}/cp/cp-002/entry",
    "{p}/#",
    "#",
    "{p}/alerts/+",
    "{p}/alerts/cp-002",
    "{p}/services/#",
    "$SYS/#",
    "$CONTROL/#",
]


def test_a_device_subscribes_to_nothing_but_its_own_alerts(
    broker: SecureBroker, topic_prefix: str
) -> None:
    ingest = login(broker, "cpm-ingest-1")
    assert not ingest.subscribe(f"$share/ingest/{topic_prefix}/cp/#").is_failure
    attacker = as_attacker(broker)
    for pattern in REFUSED_FILTERS:
        topic = pattern.format(p=topic_prefix)
        assert attacker.subscribe(topic).getName() == "Not authorized", topic
    assert not attacker.subscribe(f"{topic_prefix}/alerts/{ATTACKER}").is_failure

    victim = login(broker, VICTIM)
    for n in range(50):
        victim.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(n))
    # the whole share went to the one real member: nothing routed to the attacker
    assert len(ingest.drain(expect=50)) == 50
    assert attacker.drain(0.2) == []
    for client in (ingest, attacker, victim):
        client.close()


def test_a_device_publishes_only_its_five_topics_within_the_size_limit(
    broker: SecureBroker, topic_prefix: str
) -> None:
    ingest = login(broker, "cpm-ingest-1")
    assert not ingest.subscribe(f"{topic_prefix}/cp/#").is_failure
    own = [f"{topic_prefix}/cp/{ATTACKER}/{kind}" for kind in
           ("entry", "reading", "duty", "status", "heartbeat")]  # fmt: skip
    attacker = as_attacker(broker)
    for topic in own:  # the status retained, as the protocol has it
        answer = attacker.publish(topic, b"{}", retain=topic.endswith("/status"))
        assert answer is not None and answer.getName() == "Success", topic
    forbidden = [
        f"{topic_prefix}/cp/{ATTACKER}/junk",
        f"{topic_prefix}/cp/{ATTACKER}/entry/extra",
        f"{topic_prefix}/cp/{VICTIM}/entry",
        f"{topic_prefix}/alerts/{ATTACKER}",
        f"{topic_prefix}/internal/committed",
        f"{topic_prefix}/services/cpm-ingest-1/status",
        "$CONTROL/dynamic-security/v1",
    ]
    for topic in forbidden:
        for retain in (False, True):
            attacker = as_attacker(broker)  # a refusal may also end the connection
            answer = attacker.publish(topic, b"junk", retain=retain)
            attacker.close()
            # refused: PUBACK 0x87, or (seen now and then on 2.0.11) the connection
            # ended instead; never accepted, and nothing of it is delivered (below)
            assert answer is None or answer.getName() == "Not authorized", topic
    attacker = as_attacker(broker)
    # 8 KiB is the protocol's limit: one byte more is refused by the broker itself
    assert attacker.publish(own[1], b"x" * 8192).getName() == "Success"  # type: ignore[union-attr]
    assert attacker.publish(own[1], b"x" * 8193) is None  # disconnected, not stored

    expected = [(topic, 2) for topic in own] + [(own[1], 8192)]
    delivered = [(t, len(payload)) for t, payload, _ in ingest.drain(expect=len(expected))]
    assert delivered == expected
    # nothing forbidden was retained: a new subscriber finds only the status
    fresh = login(broker, "cpm-ingest-2")
    fresh.subscribe(f"{topic_prefix}/cp/#")
    retained = [(t, r) for t, _, r in fresh.drain(expect=1)]
    assert retained == [(f"{topic_prefix}/cp/{ATTACKER}/status", True)]
    for client in (ingest, fresh):
        client.close()


def test_services_have_only_their_own_rights(broker: SecureBroker, topic_prefix: str) -> None:
    refused_publish = [
        ("cpm-ingest-1", f"{topic_prefix}/alerts/cp-001"),
        ("cpm-ingest-1", f"{topic_prefix}/services/cpm-ingest-2/status"),
        ("cpm-alerts-1", f"{topic_prefix}/cp/cp-001/entry"),
        ("cpm-alerts-1", f"{topic_prefix}/internal/committed"),
        ("cpm-health", f"{topic_prefix}/cp/cp-001/entry"),
        ("cpm-admin", f"{topic_prefix}/alerts/cp-001"),
    ]
    for username, topic in refused_publish:
        client = login(broker, username)
        answer = client.publish(topic, b"no")  # None: refused by ending the connection
        assert answer is None or answer.getName() == "Not authorized", (username, topic)
        client.close()
    refused_subscribe = [
        ("cpm-alerts-1", f"$share/ingest/{topic_prefix}/cp/#"),
        ("cpm-health", f"{topic_prefix}/#"),
        ("cpm-admin", f"{topic_prefix}/#"),
    ]
    for username, topic in refused_subscribe:
        client = login(broker, username)
        assert client.subscribe(topic).getName() == "Not authorized", (username, topic)
        client.close()
    health = login(broker, "cpm-health")
    assert not health.subscribe("$SYS/broker/uptime").is_failure
    assert health.drain(expect=1)[0][0] == "$SYS/broker/uptime"
    health.close()


def _attack(broker: SecureBroker, prefix: str, stop: threading.Event) -> Callable[[], int]:
    """Every attack above, in a loop, until `stop`; returns how many rounds ran."""
    rounds = [0]

    def run() -> None:
        while not stop.is_set():
            for client_id in ("cpm-ingest-1", "cpm-ingest-2", VICTIM):
                as_attacker(broker, client_id=client_id).close()
            attacker = as_attacker(broker)
            attacker.subscribe(f"$share/ingest/{prefix}/cp/#")
            attacker.subscribe(f"{prefix}/cp/#")
            attacker.publish(f"{prefix}/cp/{VICTIM}/reading", reading(999_999))
            attacker.publish(f"{prefix}/cp/{ATTACKER}/junk", b"junk", retain=True)
            attacker.publish(f"{prefix}/cp/{ATTACKER}/reading", b"x" * 9000)
            attacker.close()
            rounds[0] += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> int:
        thread.join(30)
        return rounds[0]

    return join


@pytest.mark.slow
def test_two_ingest_replicas_lose_nothing_while_an_attacker_tries_everything(
    broker: SecureBroker, seeded_engine: Engine, make_settings: Any, topic_prefix: str
) -> None:
    replicas = [
        IngestService(
            make_settings(
                mqtt_url=broker.url(f"cpm-ingest-{n}"),
                ingest_client_id=f"cpm-ingest-{n}",
                ingest_shared_group="ingest",
                ingest_writer="thread",
            ),
            seeded_engine,
        )
        for n in (1, 2)
    ]
    for replica in replicas:
        replica.start()
    stop = threading.Event()
    join = _attack(broker, topic_prefix, stop)
    sent = 600
    try:
        victim = login(broker, VICTIM)
        for n in range(sent):
            victim.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(n))
            if n % 100 == 0:
                time.sleep(0.2)  # spread over the attack
        victim.close()
        wait_until(lambda: count(seeded_engine, "SELECT count(*) FROM reading") >= sent)
        for replica in replicas:
            replica.wait_idle()
    finally:
        stop.set()
        rounds = join()
        for replica in replicas:
            replica.stop()
    assert rounds >= 1
    stored = count(
        seeded_engine,
        "SELECT count(DISTINCT msg_id) FROM reading WHERE checkpoint_id = :cp",
        cp=VICTIM,
    )
    assert stored == sent
    assert count(seeded_engine, "SELECT count(*) FROM reading") == sent  # none forged
    assert all(replica.stats.received > 0 for replica in replicas)  # both shared the load
    assert sum(replica.stats.received for replica in replicas) == sent


def test_devices_and_services_connect_over_tls_with_the_generated_ca(
    broker: SecureBroker, seeded_engine: Engine, make_settings: Any, topic_prefix: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    ingest = IngestService(
        make_settings(
            mqtt_url=broker.url("cpm-ingest-1", tls=True),
            mqtt_ca_file=str(broker.tls.ca_cert),
            ingest_client_id="cpm-ingest-1",
            ingest_writer="thread",
        ),
        seeded_engine,
    )
    ingest.start()
    try:
        device = Client(
            broker.tls_port, VICTIM, broker.passwords[VICTIM], ca_file=broker.tls.ca_cert
        )
        assert not device.refused
        assert device.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(1)).getName() == (  # type: ignore[union-attr]
            "Success"
        )
        device.close()
        wait_until(lambda: count(seeded_engine, "SELECT count(*) FROM reading") == 1)
    finally:
        ingest.stop()

    impostor_ca = provision_tls(tmp_path / "other-ca", ["localhost"]).ca_cert
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(broker.tls_port, VICTIM, broker.passwords[VICTIM], ca_file=impostor_ca)
    with pytest.raises(queue.Empty):  # plain MQTT on the TLS port: no CONNACK, ever
        Client(broker.tls_port, VICTIM, broker.passwords[VICTIM])


def _ingest(
    broker: SecureBroker, make_settings: Any, engine: Engine, **extra: Any
) -> IngestService:
    settings = make_settings(
        mqtt_url=broker.url("cpm-ingest-1"),
        ingest_client_id="cpm-ingest-1",
        ingest_writer="thread",
        **extra,
    )
    service = IngestService(settings, engine)
    service.start()
    return service


def test_ingest_notices_a_lost_session(
    broker: SecureBroker, seeded_engine: Engine, make_settings: Any, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    first = _ingest(broker, make_settings, seeded_engine)
    first.stop()
    again = _ingest(broker, make_settings, seeded_engine)  # the session was kept
    again.stop()
    assert again.stats.sessions_lost == 0
    # the broker comes back without its state (a lost volume, a crash before autosave)
    broker.process.stop()
    (tmp_path / "mosquitto.db").unlink()
    broker.process.start()
    caplog.set_level("ERROR", logger="services.ingest.service")
    third = _ingest(broker, make_settings, seeded_engine)
    third.stop()
    assert third.stats.sessions_lost == 1
    assert any("broker_session_lost" in record.getMessage() for record in caplog.records)
    assert (
        count(
            seeded_engine,
            "SELECT sessions_lost FROM broker_session WHERE client_id = 'cpm-ingest-1'",
        )
        == 1
    )

    from services.api.prom import DatabaseCollector

    families = {
        family.name: family
        for family in DatabaseCollector(seeded_engine, timedelta(seconds=90)).collect()
    }
    samples = families["cpm_broker_sessions_lost"].samples
    assert [(s.labels["client_id"], s.value) for s in samples] == [("cpm-ingest-1", 1.0)]


def test_changing_to_a_shared_subscription_delivers_each_message_once(
    broker: SecureBroker, seeded_engine: Engine, make_settings: Any, topic_prefix: str
) -> None:
    plain = _ingest(broker, make_settings, seeded_engine)
    plain.stop()
    victim = login(broker, VICTIM)
    for n in range(10):  # queued in the kept session while ingest is away
        victim.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(n))
    shared = _ingest(broker, make_settings, seeded_engine, ingest_shared_group="ingest")
    try:
        for n in range(10, 30):
            victim.publish(f"{topic_prefix}/cp/{VICTIM}/reading", reading(n))
        wait_until(lambda: count(seeded_engine, "SELECT count(*) FROM reading") == 30)
        shared.wait_idle(quiet_s=1.0)
    finally:
        shared.stop()
        victim.close()
    assert shared.stats.received == 30  # not 50: the old plain subscription was dropped
    assert shared.stats.duplicates == 0


def test_rotation_and_revocation_apply_live(broker: SecureBroker, topic_prefix: str) -> None:
    from services.deploy.dynsec import ControlClient
    from services.deploy.provision import provision, revoke

    bystander = login(broker, "cp-001")
    stolen = login(broker, "cp-003")
    old_password = broker.passwords["cp-002"]
    with ControlClient(broker.url("cpm-admin")) as control:
        result = provision(broker.secrets, topic_prefix, CHECKPOINTS, rotate=["cp-002"],
                           control=control)  # fmt: skip
        revoke(broker.secrets, topic_prefix, ["cp-003"], control=control)
    assert result.rotated == ["cp-002"]
    broker.reload_passwords()
    assert Client(broker.port, "cp-002", old_password).refused
    assert not Client(broker.port, "cp-002", broker.passwords["cp-002"]).refused
    # the revoked device is thrown off at once and cannot come back
    assert stolen.disconnected.wait(5)
    stolen.close()
    assert broker.passwords["cp-003"] == ""
    # nobody else was disconnected
    assert bystander.client.is_connected() and not bystander.disconnected.is_set()
    bystander.close()

    # the broker saved the change into the provisioned file: it survives a restart
    broker.process.stop()
    broker.process.start()
    assert not Client(broker.port, "cp-002", broker.passwords["cp-002"]).refused
    with ControlClient(broker.url("cpm-admin")) as control:  # rotation re-enables
        provision(broker.secrets, topic_prefix, CHECKPOINTS, rotate=["cp-003"], control=control)
    broker.reload_passwords()
    assert not Client(broker.port, "cp-003", broker.passwords["cp-003"]).refused
