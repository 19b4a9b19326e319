"""Scenario 2: the broker is restarted (SIGTERM, then started again on the same port with
the same persistence directory) while devices publish. Devices keep publishing into
their own buffer (paho keeps unacknowledged QoS-1 messages and resends them), ingest
reconnects and resubscribes, the persistent session delivers what was queued for it;
nothing is lost.

Run twice: with a shared subscription (`$share/ingest/...`, as two ingest replicas use)
and with the default plain one. On Mosquitto 2.0.11 the broker restores ingest's session
over a restart (session present) but routes to a shared subscription only once ingest
has subscribed again; what devices publish in between is acknowledged with reason 0x10
"no matching subscribers" and not delivered. The protocol asks devices to keep such a
message and publish it again (docs/protocol.md), which this test's device does: with
that, neither subscription loses anything."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Engine

from services.core.demo import DemoCommunity
from tests.support import wait_until
from tests.support.mqtt import Broker, Device
from tests.support.reliability import (
    as_messages,
    db_name,
    env_float,
    record,
    settle,
    start_ingest,
    stored_count,
    tally,
    traffic,
)

DOWN_S = env_float("CPM_RELIABILITY_BROKER_DOWN_S", 5)
TOTAL = 6000


@pytest.mark.slow
@pytest.mark.parametrize("subscription", ["shared", "plain"])
def test_broker_restart_during_load_loses_nothing(
    subscription: str,
    seeded_engine: Engine,
    database_url: str,
    small_community: DemoCommunity,
    topic_prefix: str,
    broker: Broker,
) -> None:
    sent = traffic(small_community, topic_prefix, TOTAL)
    client_id = f"rel-broker-{uuid.uuid4().hex[:6]}"
    # a small in-memory queue, so that much is still queued at the broker at the restart
    group = {"shared": "ingest", "plain": ""}[subscription]
    ingest = start_ingest(
        database_url,
        broker.url,
        topic_prefix,
        client_id,
        CPM_INGEST_QUEUE_SIZE="200",
        CPM_INGEST_SHARED_GROUP=group,
    )
    device = Device(broker.url)
    try:
        sender = threading.Thread(
            target=device.stream, args=(as_messages(sent),), kwargs={"pace_every": 25}
        )
        sender.start()
        wait_until(lambda: stored_count(seeded_engine) > TOTAL // 4, timeout=60)
        broker.stop()
        stopped_at = stored_count(seeded_engine)
        time.sleep(DOWN_S)  # the outage itself: devices publish into their buffers
        assert sender.is_alive() or device.acknowledged() < len(sent), "the load ended early"
        broker.start()
        restarted = time.monotonic()
        wait_until(lambda: "session present: True" in ingest.log(), timeout=60)
        wait_until(lambda: stored_count(seeded_engine) > stopped_at, timeout=60)
        recovery = time.monotonic() - restarted
        sender.join(120)
        device.wait_acknowledged(timeout=120)
        settle(seeded_engine, TOTAL)
        assert ingest.alive(), ingest.log()[-3000:]
        assert ingest.stop() == 0, ingest.log()[-3000:]
    finally:
        device.close()
        ingest.close()
    result = tally(seeded_engine, sent)
    record(
        scenario="2",
        database=f"{db_name(database_url)}, {subscription} subscription",
        sent=result.sent,
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled,
        recovery_s=recovery,
        notes=f"broker down {DOWN_S:.0f} s at {stopped_at} stored; {device.retried} "
        "publishes answered 0x10 (no matching subscribers) and retried by the device; "
        "recovery = broker back to ingest committing again (its session present)",
    )
    assert result.lost == 0, result.missing
    assert result.doubled == 0
