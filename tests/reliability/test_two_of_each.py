"""Scenario 8: two `cpmon ingest` and two `cpmon alerts` processes at once on one
database: no duplicate rows, no duplicate alerts, and each alert event published on
MQTT once.

The ingest pair shares the load through the shared subscription `$share/ingest/...`
(both databases). The alert pair: the watermark row (locked on PostgreSQL, SQLite
serialises writers) keeps processing exactly-once, and one deliverer is elected: an
advisory lock on PostgreSQL, a file lock next to the database on SQLite
(services/alerts/leader.py), so each alert event is published once on both."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import Engine, text

from services.core.demo import DemoCommunity
from tests.support import Collector, wait_until
from tests.support.mqtt import Broker, Device
from tests.support.reliability import (
    as_messages,
    db_name,
    record,
    settle,
    start_alerts,
    start_ingest,
    tally,
    traffic,
)

TOTAL = 3000
STATS_RE = re.compile(r"stopped: IngestStats\(received=(\d+)")


def scalar(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one() or 0)


@pytest.mark.slow
def test_two_ingest_and_two_alert_processes_store_and_alert_once(
    seeded_engine: Engine,
    database_url: str,
    small_community: DemoCommunity,
    topic_prefix: str,
    broker: Broker,
) -> None:
    sent = traffic(small_community, topic_prefix, TOTAL, fever_every=10)
    tag = uuid.uuid4().hex[:6]
    ingests = [
        start_ingest(database_url, broker.url, topic_prefix, f"rel-two-{tag}-{n}") for n in (1, 2)
    ]
    workers = [start_alerts(database_url, broker.url, topic_prefix) for _ in (1, 2)]
    alerts_seen = Collector(broker.url, f"{topic_prefix}/alerts/+")
    device = Device(broker.url)
    try:
        for worker in workers:
            worker.wait_log("alert service started")
        sender = threading.Thread(
            target=device.stream, args=(as_messages(sent),), kwargs={"pace_every": 50}
        )
        sender.start()
        sender.join(120)
        device.wait_acknowledged()
        settle(seeded_engine, TOTAL)
        fevers = scalar(seeded_engine, "SELECT count(*) FROM reading WHERE fever")

        def alerts_settled() -> bool:
            occurrences = scalar(
                seeded_engine, "SELECT sum(occurrences) FROM alert WHERE type = 'fever'"
            )
            pending = scalar(
                seeded_engine,
                "SELECT count(*) FROM outbox WHERE channel = 'mqtt' AND state <> 'delivered'",
            )
            return occurrences >= fevers and pending == 0

        wait_until(alerts_settled, timeout=90, interval=0.5)
        mqtt_rows = scalar(seeded_engine, "SELECT count(*) FROM outbox WHERE channel = 'mqtt'")
        wait_until(lambda: len(alerts_seen.messages) >= mqtt_rows, timeout=30)
        for process in (*ingests, *workers):
            assert process.alive(), process.log()[-3000:]
            assert process.stop() == 0, process.log()[-3000:]
    finally:
        device.close()
        alerts_seen.close()
        logs = [process.log() for process in ingests]
        for process in (*ingests, *workers):
            process.close()
    shares = [int(m.group(1)) for log in logs if (m := STATS_RE.search(log))]
    result = tally(seeded_engine, sent)
    alert_count = scalar(seeded_engine, "SELECT count(*) FROM alert")
    fever_alerts = scalar(seeded_engine, "SELECT count(*) FROM alert WHERE type = 'fever'")
    fever_occurrences = scalar(
        seeded_engine, "SELECT sum(occurrences) FROM alert WHERE type = 'fever'"
    )
    opened_twice = scalar(
        seeded_engine,
        "SELECT count(*) FROM (SELECT alert_id FROM alert_history WHERE action = 'opened' "
        "GROUP BY alert_id HAVING count(*) > 1) AS doubled",
    )
    events = Counter(
        (body["data"]["id"], body["type"])
        for body in (json.loads(payload) for _, payload in alerts_seen.messages)
    )
    published_twice = sum(n - 1 for n in events.values() if n > 1)
    record(
        scenario="8",
        database=db_name(database_url),
        sent=result.sent,
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled + opened_twice + (fever_occurrences - fevers),
        notes=f"ingest shares (messages received): {shares}; {alert_count} alerts "
        f"({fever_alerts} fever, {fever_occurrences} occurrences for {fevers} fever "
        f"readings); alerts opened twice: {opened_twice}; MQTT alert events "
        f"{sum(events.values())}, of which duplicates: {published_twice}",
    )
    assert result.lost == 0, result.missing
    assert result.doubled == 0
    assert len(shares) == 2 and all(share > 0 for share in shares), shares
    assert fevers > 0 and fever_occurrences == fevers  # each fever counted once
    assert opened_twice == 0
    assert published_twice == 0
