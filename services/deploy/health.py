"""Container health check of the services without an HTTP port (ingest, alerts,
retention, the simulator): `python -m services.deploy.health --broker --database`.

`--broker`: the process holds an established TCP connection to the broker's port
(read from the container's own /proc/net/tcp; a dead broker or a process that gave up
reconnecting shows as none). `--database`: a `SELECT 1` through CPM_DATABASE_URL
answers. Exit 0 when every asked check passes, else 1 with the reason on stderr (docker
keeps it in `docker inspect`'s health log).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"
MQTT_URL = "mqtt://127.0.0.1:1883"  # the settings' defaults (services/core/settings.py)
DATABASE_URL = "sqlite:///./var/checkpoint-monitor.db"
PROC_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def established_remote_ports(lines: Iterable[str]) -> set[int]:
    """Remote ports of the ESTABLISHED sockets in /proc/net/tcp{,6} lines (header
    included); malformed lines are skipped."""
    ports: set[int] = set()
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] != ESTABLISHED or ":" not in fields[2]:
            continue
        try:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return ports


def broker_problem(port: int, tables: Iterable[Path] = PROC_TCP) -> str | None:
    lines: list[str] = []
    for table in tables:
        if table.exists():
            lines += table.read_text().splitlines()
    if port in established_remote_ports(lines):
        return None
    return f"no connection to the broker (port {port})"


def database_problem(url: str, timeout_s: int = 5) -> str | None:
    """psycopg or sqlite3 directly, not SQLAlchemy and the settings: docker runs this
    every few seconds in every container, so it must start fast and cheaply."""
    try:
        if url.startswith("sqlite"):
            import sqlite3

            path = url.split(":///", 1)[1] if ":///" in url else ":memory:"
            with contextlib.closing(sqlite3.connect(path, timeout=timeout_s)) as conn:
                conn.execute("SELECT 1")
        else:
            import psycopg

            conninfo = "postgresql" + url.split("+psycopg", 1)[1] if "+psycopg" in url else url
            with psycopg.connect(conninfo, connect_timeout=timeout_s) as conn:
                conn.execute("SELECT 1")
    except Exception as exc:  # any failure is the answer, not a crash
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return f"database unreachable: {type(exc).__name__}: {first_line}"
    return None


def mqtt_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.deploy.health")
    parser.add_argument("--broker", action="store_true", help="connected to the broker")
    parser.add_argument("--database", action="store_true", help="the database answers")
    args = parser.parse_args(argv)
    if not (args.broker or args.database):
        parser.error("say what to check: --broker and/or --database")
    # the services' own variables (CPM_MQTT_URL, CPM_DATABASE_URL and their defaults)
    problems = []
    if args.broker:
        problems.append(broker_problem(mqtt_port(os.environ.get("CPM_MQTT_URL", MQTT_URL))))
    if args.database:
        problems.append(database_problem(os.environ.get("CPM_DATABASE_URL", DATABASE_URL)))
    found = [p for p in problems if p]
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
