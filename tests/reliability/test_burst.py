"""Scenario 5: a burst far beyond what ingest sustains. The benchmark rate is about
10,000 msg/s, so ten times that is more than one machine can publish; the burst here is
honestly "as fast as one publisher process can send" for CPM_RELIABILITY_BURST_S seconds
(default 60 s, as the issue asks). Ingest's memory (VmRSS of the `cpmon ingest`
process and its writer process) must stay bounded: its queue is bounded and MQTT
Receive Maximum makes the broker hold the rest. Everything the broker acknowledged is stored."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

import pytest
from sqlalchemy import Engine

from tests.reliability.burst import BASE, burst_message
from tests.support.mqtt import Broker
from tests.support.reliability import (
    ROOT,
    db_name,
    env_float,
    record,
    settle,
    start_ingest,
    tally,
)

BURST_S = env_float("CPM_RELIABILITY_BURST_S", 60)
RSS_LIMIT_MB = 200  # the bound for a 1-million-message backlog


def sample_rss(process_rss, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(0.25):
        try:
            samples.append((time.monotonic() - started, process_rss()))
        except OSError:
            return


@pytest.mark.slow
def test_burst_keeps_ingest_memory_bounded_and_loses_nothing(
    seeded_engine: Engine, database_url: str, topic_prefix: str, broker: Broker
) -> None:
    ingest = start_ingest(
        database_url, broker.url, topic_prefix, f"rel-burst-{uuid.uuid4().hex[:6]}"
    )
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(ingest.rss_kb, samples, stop))
    idle_rss = ingest.rss_kb()
    sampler.start()
    try:
        burst_started = time.monotonic()
        publisher = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.reliability.burst",
                broker.url,
                topic_prefix,
                str(BURST_S),
                BASE.isoformat(),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BURST_S + 180,
            check=True,
        )
        published = json.loads(publisher.stdout.strip().splitlines()[-1])
        burst_s = time.monotonic() - burst_started
        stored = settle(seeded_engine, published["acked"], quiet_s=20, timeout=600)
        drained_s = time.monotonic() - burst_started
        assert ingest.alive(), ingest.log()[-3000:]
        assert ingest.stop() == 0, ingest.log()[-3000:]
    finally:
        stop.set()
        sampler.join()
        ingest.close()
    sent = [
        burst_message(topic_prefix, n, datetime.fromisoformat(BASE.isoformat()))
        for n in range(published["sent"])
    ]
    result = tally(seeded_engine, sent)
    peak_mb = max(rss for _, rss in samples) / 1024
    during = [rss for t, rss in samples if t <= burst_s]
    half = len(during) // 2
    first_half_mb = max(during[:half] or [0]) / 1024
    second_half_mb = max(during[half:] or [0]) / 1024
    record(
        scenario="5",
        database=db_name(database_url),
        sent=result.sent,
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled,
        recovery_s=drained_s - burst_s,
        notes=f"{BURST_S:.0f} s burst at {published['acked'] / published['seconds']:,.0f} msg/s "
        f"(one paho publisher, QoS 1); ingest stored {stored / drained_s:,.0f} msg/s overall; "
        f"ingest RSS (with its writer) idle {idle_rss / 1024:.0f} MB, peak {peak_mb:.0f} MB "
        f"(first half of the burst {first_half_mb:.0f}, second {second_half_mb:.0f}); "
        "recovery = burst end to backlog drained",
    )
    assert published["acked"] == published["sent"], published
    assert result.lost == 0, result.missing
    assert result.doubled == 0
    assert peak_mb < RSS_LIMIT_MB
    # bounded, not merely small: no steady growth while the backlog piles up at the broker
    assert second_half_mb < first_half_mb * 1.25 + 20
