"""Helpers of the reliability scenarios (tests/reliability): ingest and alert
processes, a traffic generator that remembers what it sent, the check of the database
against it, and the report. The restartable broker and the device that buffers are in
mqtt.py.

Durations are configurable (see `env_float`) so CI stays within its time budget.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from services.core.demo import DemoCommunity
from tests.reliability.report import Figures, ReliabilityReport
from tests.support.env import TEST_SECRET
from tests.support.processes import tree_rss_kb
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
REPORT = ReliabilityReport()


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def record(**values: Any) -> Figures:
    return REPORT.record(Figures(**values))


def db_name(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


# --- processes -------------------------------------------------------------------------
def service_env(database_url: str, mqtt_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CPM_DATABASE_URL": database_url,
        "CPM_MQTT_URL": mqtt_url,
        "CPM_TOPIC_PREFIX": prefix,
        "CPM_ID_HASH_SECRET": TEST_SECRET,
        **extra,
    }


class Process:
    """A `cpmon` sub-command in a process of its own; its log goes to a file (a pipe
    nobody reads would fill up and block it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="cpm-rel-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rss_kb(self) -> int:
        """Resident memory of the process and its children (ingest's writer process)."""
        return tree_rss_kb(self.pid)

    def wait_log(self, needle: str, timeout: float = 60) -> None:
        """Wait for a line in the log (e.g. ingest's "ingest running", printed once it
        is subscribed); fail at once if the process died."""

        def seen() -> bool:
            assert self.alive(), f"the process exited: {self.log()[-3000:]}"
            return needle in self.log()

        wait_until(seen, timeout=timeout, interval=0.1)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the return code (a clean stop is 0)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def close(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()
        # captured by pytest, shown when the test fails
        print(f"--- log of pid {self.pid} ---\n{self.log()[-4000:]}")
        self.log_path.unlink(missing_ok=True)


def start_ingest(
    database_url: str, mqtt_url: str, prefix: str, client_id: str, wait: bool = True, **extra: str
) -> Process:
    """`cpmon ingest`, by default returned once it is subscribed (before that, the broker
    would drop what devices publish: there is no session yet to queue it in)."""
    env = service_env(database_url, mqtt_url, prefix, CPM_INGEST_CLIENT_ID=client_id, **extra)
    process = Process(["ingest"], env)
    if wait:
        process.wait_log("ingest running as")
    return process


def start_alerts(database_url: str, mqtt_url: str, prefix: str, **extra: str) -> Process:
    return Process(
        ["alerts", "--poll", "0.3", "--timers", "1"],
        service_env(database_url, mqtt_url, prefix, **extra),
    )


# --- traffic that remembers what it sent ------------------------------------------------
TABLE_OF_KIND = {"entry": "passage", "reading": "reading", "duty": "duty_event"}


@dataclass(frozen=True, slots=True)
class Sent:
    topic: str
    payload: bytes
    table: str
    checkpoint_id: str
    msg_id: str


def traffic(
    community: DemoCommunity,
    prefix: str,
    total: int,
    *,
    start: datetime | None = None,
    span: timedelta = timedelta(minutes=30),
    tag: str = "",
    checkpoints: int | None = None,
    fever_every: int = 0,
) -> list[Sent]:
    """Entries, the readings that screen them, and now and then a duty change, spread
    evenly over `span` from `start`; unique msg ids. Every `fever_every`-th reading is
    a fever of a person no other fever names."""
    start = start or datetime.now(UTC) - span - timedelta(minutes=1)
    cps = community.checkpoints[:checkpoints] if checkpoints else community.checkpoints
    step = span / max(total, 1)
    out: list[Sent] = []
    for n in range(total):
        cp = cps[n % len(cps)].id
        ts = (start + step * n).isoformat()
        person = community.people[(n // 2) % len(community.people)]
        if n % 20 == 19:
            staff = f"st-{cp.removeprefix('cp-')}-1"
            action = "on" if n % 40 == 19 else "off"
            msg_id, kind = f"{tag}d{n}", "duty"
            body = f'{{"msg_id":"{msg_id}","ts":"{ts}","staff_id":"{staff}","action":"{action}"}}'
        elif n % 2 == 0:
            msg_id, kind = f"{tag}e{n}", "entry"
            body = (
                f'{{"msg_id":"{msg_id}","ts":"{ts}","direction":"in","kind":"person",'
                f'"id_number":"{person.id_number}","qr_pass":"{person.pass_code}"}}'
            )
        else:
            fever = fever_every and (n // 2) % fever_every == 0
            temp = 38.4 if fever else 36.5
            msg_id, kind = f"{tag}r{n}", "reading"
            body = (
                f'{{"msg_id":"{msg_id}","ts":"{ts}","temp_c":{temp},"direction":"in",'
                f'"entry_msg_id":"{tag}e{n - 1}"}}'
            )
        topic = f"{prefix}/cp/{cp}/{kind}"
        out.append(Sent(topic, body.encode(), TABLE_OF_KIND[kind], cp, msg_id))
    return out


def as_messages(sent: list[Sent]) -> list[tuple[str, bytes]]:
    return [(s.topic, s.payload) for s in sent]


@dataclass
class Tally:
    sent: int
    stored: int
    lost: int
    doubled: int
    missing: list[tuple[str, str, str]]


def tally(engine: Engine, sent: list[Sent]) -> Tally:
    """The database against what was sent: every message found once, and the roll-ups
    count each passage and reading once."""
    expected: dict[str, set[tuple[str, str]]] = {}
    for s in sent:
        expected.setdefault(s.table, set()).add((s.checkpoint_id, s.msg_id))
    found = 0
    doubled = 0
    missing: list[tuple[str, str, str]] = []
    with engine.connect() as conn:
        for table, keys in expected.items():
            rows = conn.execute(text(f"SELECT checkpoint_id, msg_id FROM {table}")).all()
            counts = Counter((row[0], row[1]) for row in rows)
            doubled += sum(n - 1 for key, n in counts.items() if key in keys and n > 1)
            here = keys & counts.keys()
            found += len(here)
            missing += [(table, *key) for key in sorted(keys - here)][:20]
        for table, column in (("passage", "passages"), ("reading", "readings")):
            counted = conn.execute(text(f"SELECT coalesce(sum({column}), 0) FROM coverage_rollup"))
            doubled += max(0, int(counted.scalar_one()) - len(expected.get(table, ())))
    total = sum(len(keys) for keys in expected.values())
    return Tally(total, found, total - found, doubled, missing)


def stored_count(engine: Engine, tables: tuple[str, ...] = ("passage", "reading", "duty_event")):
    with engine.connect() as conn:
        return sum(
            int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables
        )


def settle(engine: Engine, total: int, quiet_s: float = 10, timeout: float = 180) -> int:
    """Wait until `total` rows are stored, or until nothing new has been stored for
    `quiet_s` (then the test records what is missing and fails on it)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = stored_count(engine)
        if now >= total:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return now
        time.sleep(0.2)
    return stored_count(engine)
