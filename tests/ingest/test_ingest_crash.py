"""Kill the ingest process (SIGKILL) mid-stream: nothing lost, nothing doubled."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.core.demo import DemoCommunity
from services.core.protocol import service_status_topic
from tests.support import (
    Collector,
    Publisher,
    child_pids,
    count,
    private_broker,
    wait_until,
)
from tests.support.env import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def start_ingest(database_url: str, mqtt_url: str, prefix: str, client_id: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "CPM_DATABASE_URL": database_url,
        "CPM_MQTT_URL": mqtt_url,
        "CPM_TOPIC_PREFIX": prefix,
        "CPM_ID_HASH_SECRET": TEST_SECRET,
        "CPM_INGEST_CLIENT_ID": client_id,
        "CPM_INGEST_BATCH_SIZE": "50",  # many small commits: the kill lands between them
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "ingest"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stream(community: DemoCommunity, prefix: str, total: int) -> list[tuple[str, bytes]]:
    """Entries and readings with unique msg ids across all checkpoints."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    messages = []
    for n in range(total):
        cp = community.checkpoints[n % len(community.checkpoints)].id
        ts = (start + timedelta(milliseconds=500 * n)).isoformat()
        if n % 2:
            body = f'{{"msg_id":"r{n}","ts":"{ts}","temp_c":36.4,"direction":"in"}}'
            messages.append((f"{prefix}/cp/{cp}/reading", body.encode()))
        else:
            person = community.people[n % len(community.people)]
            body = (
                f'{{"msg_id":"e{n}","ts":"{ts}","direction":"out","kind":"person",'
                f'"id_number":"{person.id_number}","qr_pass":"{person.pass_code}"}}'
            )
            messages.append((f"{prefix}/cp/{cp}/entry", body.encode()))
    return messages


TOTAL = 3000


def stored(engine: Engine) -> int:
    return count(engine, "SELECT count(*) FROM passage") + count(
        engine, "SELECT count(*) FROM reading"
    )


@dataclass
class Streaming:
    """`cpmon ingest` on a private broker, with a device publishing TOTAL messages."""

    engine: Engine
    database_url: str
    broker_url: str
    prefix: str
    client_id: str
    ingest: subprocess.Popen
    status: Collector
    sender: threading.Thread

    def stored(self) -> int:
        return stored(self.engine)

    def restart(self) -> None:
        self.ingest = start_ingest(self.database_url, self.broker_url, self.prefix, self.client_id)

    def stop(self) -> bytes:
        """SIGTERM, a clean exit; returns what ingest logged."""
        self.ingest.send_signal(signal.SIGTERM)
        _, errors = self.ingest.communicate(timeout=30)
        assert self.ingest.returncode == 0, errors.decode()[-2000:]
        return bytes(errors)


@contextmanager
def streaming(
    engine: Engine, database_url: str, community: DemoCommunity, prefix: str, name: str
) -> Iterator[Streaming]:
    """Yields once 600 rows are stored, with the stream still going."""
    client_id = f"{name}-{uuid.uuid4().hex[:6]}"
    with private_broker() as broker_url:
        ingest = start_ingest(database_url, broker_url, prefix, client_id)
        device = Publisher(broker_url)
        status = Collector(broker_url, service_status_topic(prefix, client_id))
        sender = threading.Thread(
            target=device.publish_many, args=(stream(community, prefix, TOTAL),)
        )
        run = Streaming(engine, database_url, broker_url, prefix, client_id, ingest, status, sender)
        try:
            wait_until(lambda: _online(status, run.ingest), timeout=20)
            sender.start()
            wait_until(lambda: run.stored() > 600, timeout=60)
            yield run
        finally:
            device.close()
            status.close()
            if run.ingest.poll() is None:
                run.ingest.kill()


def assert_stored_once(engine: Engine) -> None:
    assert stored(engine) == TOTAL
    # roll-ups count each passage once, redeliveries included
    assert count(engine, "SELECT sum(passages) FROM coverage_rollup") == TOTAL // 2
    assert count(engine, "SELECT sum(readings) FROM coverage_rollup") == TOTAL // 2
    assert count(engine, "SELECT count(*) FROM dead_letter") == 0


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_doubles_nothing(
    seeded_engine: Engine, database_url: str, small_community: DemoCommunity, topic_prefix: str
) -> None:
    with streaming(
        seeded_engine, database_url, small_community, topic_prefix, "crash-ingest"
    ) as run:
        writers = children(run.ingest.pid)
        assert writers, "cpmon ingest runs its writer process by default"
        run.ingest.send_signal(signal.SIGKILL)  # no goodbye, no flush
        run.ingest.wait(10)
        # the orphaned writer notices and goes (it would hold SQLite's write lock)
        wait_until(lambda: not any(alive(pid) for pid in writers), timeout=20)
        killed_at = run.stored()
        run.sender.join(60)
        assert killed_at < TOTAL, "the kill came too late to prove anything"
        wait_until(lambda: json.loads(run.status.messages[-1][1])["state"] == "offline")  # will
        run.restart()
        wait_until(lambda: run.stored() == TOTAL, timeout=90)
        run.stop()
    assert_stored_once(seeded_engine)


def _online(status: Collector, process: subprocess.Popen) -> bool:
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    return bool(status.messages) and json.loads(status.messages[-1][1])["state"] == "online"


@pytest.mark.slow
def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(
    seeded_engine: Engine, database_url: str, small_community: DemoCommunity, topic_prefix: str
) -> None:
    with streaming(
        seeded_engine, database_url, small_community, topic_prefix, "crash-writer"
    ) as run:
        (writer,) = children(run.ingest.pid)
        os.kill(writer, signal.SIGKILL)  # mid-batch, most likely
        killed_at = run.stored()
        run.sender.join(60)
        wait_until(lambda: run.stored() == TOTAL, timeout=90)
        assert killed_at < TOTAL, "the kill came too late to prove anything"
        replacement = children(run.ingest.pid)
        assert len(replacement) == 1 and replacement != [writer]
        assert b"writer process died" in run.stop()
    assert_stored_once(seeded_engine)


def children(pid: int) -> list[int]:
    """The writer processes of ingest `pid`, not multiprocessing's resource tracker."""
    found: list[int] = []
    for child in child_pids(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
