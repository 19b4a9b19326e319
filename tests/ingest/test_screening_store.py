"""Screening in the database (both engines): what a batch reads to pair its passages
and readings stays the same however many unpaired ones share the window, and closest
pairs are still taken first across batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from services.ingest.batch import BatchProcessor
from services.ingest.parse import Inbound
from services.ingest.store import BatchOutcome

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


class Gate:
    """One checkpoint's messages, fed straight to the batch writer (no broker)."""

    def __init__(self, processor: BatchProcessor, prefix: str, checkpoint: str = "cp-001"):
        self.processor = processor
        self.prefix = prefix
        self.checkpoint = checkpoint
        self.sent = 0

    def message(self, topic_kind: str, at: datetime, **body: Any) -> Inbound:
        self.sent += 1
        body = {"msg_id": f"{topic_kind[0]}{self.sent}", "ts": at.isoformat(), **body}
        topic = f"{self.prefix}/cp/{self.checkpoint}/{topic_kind}"
        return Inbound(topic, json.dumps(body).encode(), datetime.now(UTC))

    def entry(self, at: datetime) -> Inbound:
        # a stranger: a person passage all the same, to be screened
        return self.message(
            "entry", at, direction="in", kind="person", id_number="110101199003078888"
        )

    def reading(self, at: datetime) -> Inbound:
        return self.message("reading", at, temp_c=36.5, direction="in")

    def store(self, items: list[Inbound]) -> BatchOutcome:
        return self.processor.process(items)


def probe(gate: Gate, at: datetime) -> float:
    """Rows screening reads per message for a batch of 100 entries and 200 readings."""
    items = [gate.entry(at) for _ in range(100)] + [gate.reading(at) for _ in range(200)]
    outcome = gate.store(items)
    assert outcome.screened == 200  # every reading found a passage
    return (outcome.matching.rows + outcome.matching.steps) / len(items)


def test_a_stuck_clock_costs_the_same_per_message_as_its_window_fills(
    seeded_engine: Engine, make_settings: Any
) -> None:
    settings = make_settings()
    gate = Gate(BatchProcessor(seeded_engine, settings), settings.topic_prefix)
    # every message at the same instant; passages pile up unpaired
    gate.store([gate.entry(T0) for _ in range(500)])
    small = probe(gate, T0)
    for _ in range(5):
        gate.store([gate.entry(T0) for _ in range(1000)])
    large = probe(gate, T0)
    with seeded_engine.connect() as conn:
        open_passages = conn.execute(
            text("SELECT count(*) FROM passage WHERE screened = false")
        ).scalar_one()
    assert open_passages == 500 + 100 + 5000 + 100 - 400
    print(f"rows+steps per message: {small:.2f} -> {large:.2f}")
    assert large <= small * 1.2 + 1, (small, large)  # 10x the window, the same reads
    assert large < 20, large


def test_closest_pairs_first_across_batches(seeded_engine: Engine, make_settings: Any) -> None:
    settings = make_settings()
    gate = Gate(BatchProcessor(seeded_engine, settings), settings.topic_prefix)
    # stored, unpaired: passages at 0 s and 25 s
    gate.store([gate.entry(T0), gate.entry(T0 + timedelta(seconds=25))])
    # the next batch: readings at 10 s and 24 s, a passage at 11 s
    gate.store(
        [
            gate.reading(T0 + timedelta(seconds=10)),
            gate.reading(T0 + timedelta(seconds=24)),
            gate.entry(T0 + timedelta(seconds=11)),
        ]
    )
    with seeded_engine.connect() as conn:
        pairs = dict(
            conn.execute(
                text(
                    "SELECT p.msg_id, r.msg_id FROM passage p JOIN reading r"
                    " ON r.passage_id = p.id ORDER BY p.msg_id"
                )
            ).all()
        )
        unpaired = conn.execute(text("SELECT msg_id FROM passage WHERE NOT screened")).all()
    # 24 s pairs with the stored 25 s (1 s), 10 s with the new 11 s (1 s); 0 s stays open
    assert pairs == {"e2": "r4", "e5": "r3"}
    assert [row[0] for row in unpaired] == ["e1"]
