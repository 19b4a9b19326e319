"""`cpmon ingest` as the benchmarks start it: a process of its own (receiver + writer),
as deployed, on a given database, broker and topic prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789"


def ingest_command(
    url: str, broker: str, prefix: str, client_id: str
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a `cpmon ingest` process."""
    env = {
        **os.environ,
        "CPM_DATABASE_URL": url,
        "CPM_MQTT_URL": broker,
        "CPM_TOPIC_PREFIX": prefix,
        "CPM_ID_HASH_SECRET": SECRET,
        "CPM_INGEST_CLIENT_ID": client_id,
        "CPM_LOG_LEVEL": "WARNING",
    }
    return [sys.executable, "-m", "services.cli", "ingest"], env


def start_ingest(url: str, broker: str, prefix: str, client_id: str) -> subprocess.Popen[bytes]:
    command, env = ingest_command(url, broker, prefix, client_id)
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
