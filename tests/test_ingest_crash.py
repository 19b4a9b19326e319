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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.core.demo import DemoCommunity
from services.core.protocol import service_status_topic
from tests.conftest import TEST_SECRET
from tests.support import Collector, Publisher, count, private_broker, wait_until

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_doubles_nothing(
    seeded_engine: Engine, database_url: str, small_community: DemoCommunity, topic_prefix: str
) -> None:
    total = 3000
    messages = stream(small_community, topic_prefix, total)
    client_id = f"crash-ingest-{uuid.uuid4().hex[:6]}"

    def stored() -> int:
        return count(seeded_engine, "SELECT count(*) FROM passage") + count(
            seeded_engine, "SELECT count(*) FROM reading"
        )

    with private_broker() as broker_url:
        ingest = start_ingest(database_url, broker_url, topic_prefix, client_id)
        device = Publisher(broker_url)
        status = Collector(broker_url, service_status_topic(topic_prefix, client_id))
        try:
            wait_until(lambda: _online(status, ingest), timeout=20)
            sender = threading.Thread(target=device.publish_many, args=(messages,))
            sender.start()
            wait_until(lambda: stored() > 600, timeout=60)
            writers = children(ingest.pid)
            assert writers, "cpmon ingest runs its writer process by default"
            ingest.send_signal(signal.SIGKILL)  # no goodbye, no flush
            ingest.wait(10)
            # the orphaned writer notices and goes (it would hold SQLite's write lock)
            wait_until(lambda: not any(alive(pid) for pid in writers), timeout=20)
            killed_at = stored()
            sender.join(60)
            assert killed_at < total, "the kill came too late to prove anything"
            wait_until(lambda: json.loads(status.messages[-1][1])["state"] == "offline")  # the will
            ingest = start_ingest(database_url, broker_url, topic_prefix, client_id)
            wait_until(lambda: stored() == total, timeout=90)
            ingest.send_signal(signal.SIGTERM)
            _, errors = ingest.communicate(timeout=30)
            assert ingest.returncode == 0, errors.decode()[-2000:]
        finally:
            device.close()
            status.close()
            if ingest.poll() is None:
                ingest.kill()
    assert stored() == total
    # roll-ups count each passage once, redeliveries included
    assert count(seeded_engine, "SELECT sum(passages) FROM coverage_rollup") == total // 2
    assert count(seeded_engine, "SELECT sum(readings) FROM coverage_rollup") == total // 2
    assert count(seeded_engine, "SELECT count(*) FROM dead_letter") == 0


def _online(status: Collector, process: subprocess.Popen) -> bool:
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    return bool(status.messages) and json.loads(status.messages[-1][1])["state"] == "online"


@pytest.mark.slow
def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(
    seeded_engine: Engine, database_url: str, small_community: DemoCommunity, topic_prefix: str
) -> None:
    total = 3000
    messages = stream(small_community, topic_prefix, total)
    client_id = f"crash-writer-{uuid.uuid4().hex[:6]}"

    def stored() -> int:
        return count(seeded_engine, "SELECT count(*) FROM passage") + count(
            seeded_engine, "SELECT count(*) FROM reading"
        )

    with private_broker() as broker_url:
        ingest = start_ingest(database_url, broker_url, topic_prefix, client_id)
        device = Publisher(broker_url)
        status = Collector(broker_url, service_status_topic(topic_prefix, client_id))
        try:
            wait_until(lambda: _online(status, ingest), timeout=20)
            sender = threading.Thread(target=device.publish_many, args=(messages,))
            sender.start()
            wait_until(lambda: stored() > 600, timeout=60)
            (writer,) = children(ingest.pid)
            os.kill(writer, signal.SIGKILL)  # mid-batch, most likely
            killed_at = stored()
            sender.join(60)
            wait_until(lambda: stored() == total, timeout=90)
            assert killed_at < total, "the kill came too late to prove anything"
            replacement = children(ingest.pid)
            assert len(replacement) == 1 and replacement != [writer]
            ingest.send_signal(signal.SIGTERM)
            _, errors = ingest.communicate(timeout=30)
            assert ingest.returncode == 0, errors.decode()[-2000:]
            assert b"writer process died" in errors
        finally:
            device.close()
            status.close()
            if ingest.poll() is None:
                ingest.kill()
    assert stored() == total
    assert count(seeded_engine, "SELECT sum(passages) FROM coverage_rollup") == total // 2
    assert count(seeded_engine, "SELECT sum(readings) FROM coverage_rollup") == total // 2


def children(pid: int) -> list[int]:
    """The writer processes of ingest `pid` (Linux /proc), not multiprocessing's
    resource tracker."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
