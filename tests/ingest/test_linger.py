"""How long a batch waits to fill: the base linger at a normal day's rates, longer under
load (linger.py), and the ingest service asking for it (no timings: the waits it asks
for, and counts)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from services.ingest.linger import BUSY_RATE, QUIET_RATE, ArrivalRate, linger_s
from services.ingest.receiver import Handoff
from services.ingest.service import IngestService


def test_the_base_linger_up_to_a_busy_rate_then_longer() -> None:
    assert linger_s(0, 0.02, 0.1) == 0.02
    assert linger_s(1000, 0.02, 0.1) == 0.02  # the alert-latency benchmarks' rate
    assert linger_s(QUIET_RATE, 0.02, 0.1) == 0.02
    assert linger_s((QUIET_RATE + BUSY_RATE) / 2, 0.02, 0.1) == pytest.approx(0.06)
    assert linger_s(BUSY_RATE, 0.02, 0.1) == pytest.approx(0.1)
    assert linger_s(50 * BUSY_RATE, 0.02, 0.1) == pytest.approx(0.1)
    assert linger_s(50 * BUSY_RATE, 0.02, 0.02) == 0.02  # switched off
    assert linger_s(50 * BUSY_RATE, 0.05, 0.02) == 0.05  # never below the base


@given(
    rates=st.lists(st.floats(0, 1e6), min_size=2, max_size=2),
    base=st.floats(0.001, 5),
    busy=st.floats(0.001, 5),
)
def test_the_linger_never_shrinks_as_the_rate_grows(
    rates: list[float], base: float, busy: float
) -> None:
    low, high = sorted(rates)
    assert base <= linger_s(low, base, busy) <= linger_s(high, base, busy)
    assert linger_s(high, base, busy) <= max(base, busy)


def test_the_arrival_rate_is_counted_over_the_time_between_samples() -> None:
    rate = ArrivalRate()
    assert rate.sample(100, 10.0) == 0.0  # the first sample only sets the start
    assert rate.sample(400, 10.1) == 0.0  # a burst, too soon to tell a rate
    assert rate.sample(1600, 10.5) == pytest.approx(3000)
    assert rate.sample(1700, 10.6) == pytest.approx(3000)  # too soon: kept
    assert rate.sample(1750, 11.5) == pytest.approx(150)  # over the whole second since


def test_the_handoff_counts_what_arrives() -> None:
    handoff = Handoff(maxsize=10)
    stopping = threading.Event()
    for n in range(7):
        handoff.put(n, stopping)
    assert handoff.take(5, 0.0, 0.0) == [0, 1, 2, 3, 4]
    assert handoff.arrived == 7  # taking does not uncount


def test_the_service_lingers_longer_while_messages_pour_in(
    engine: Engine, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(ingest_writer="thread", ingest_batch_ms=20, ingest_busy_batch_ms=100)
    service = IngestService(settings, engine)
    lingers: list[float] = []

    def take(size: int, linger: float, timeout: float) -> list[Any]:
        lingers.append(linger)
        return []

    monkeypatch.setattr(service._queue, "take", take)
    service._next_batch()  # nothing has arrived yet
    # 5,000 messages in the last second: above BUSY_RATE
    service._arrivals = ArrivalRate(count=0, at=time.monotonic() - 1.0)
    service._queue.arrived = 5000
    service._next_batch()
    # then none for a second: back to the base linger
    service._arrivals.at = time.monotonic() - 1.0
    service._next_batch()
    assert lingers == [pytest.approx(0.02), pytest.approx(0.1), pytest.approx(0.02)]
