"""The compose health check of ingest, alerts, retention and the simulator
(services/deploy/health.py), and `cpmon seed --demo --if-empty`, which the demo
profile's seed service runs on every start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from services.core.settings import DEFAULT_DATABASE_URL, Settings
from services.deploy.health import (
    DATABASE_URL,
    MQTT_URL,
    broker_problem,
    database_problem,
    established_remote_ports,
    mqtt_port,
)
from tests.support import TEST_SECRET, free_port

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"


def test_only_established_sockets_count_and_junk_lines_are_skipped() -> None:
    lines = [
        HEADER,
        "   0: 0100007F:D431 0200A8C0:075B 01 00000000:00000000 00:00000000 00000000 10001",
        "   1: 0100007F:D432 0200A8C0:1538 06 00000000:00000000 00:00000000 00000000 10001",
        "   2: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001",
        "   3: 0100007F:D433 0200A8C0:ZZZZ 01",
        "   4: garbage",
        "",
        "   5: 00000000000000000000000001000000:D434 0000000000000000FFFF00000200A8C0:1538 01 0",
    ]
    # 0x075B = 1883 established; 0x1538 = 5432 in TIME_WAIT (06) does not count, but
    # the IPv6 line's does; the listener (0A) and the malformed lines are ignored
    assert established_remote_ports(lines) == {1883, 5432}


def test_broker_check_sees_a_real_connection_come_and_go() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as server:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        assert broker_problem(port) is None
        client.close()
        accepted.close()
    problem = broker_problem(port)
    assert problem is not None and str(port) in problem


def test_database_check_answers_for_a_live_and_a_dead_database(database_url: str) -> None:
    assert database_problem(database_url) is None
    dead = f"postgresql+psycopg://cpm:x@127.0.0.1:{free_port()}/cpm"
    problem = database_problem(dead, timeout_s=2)
    assert problem is not None and problem.startswith("database unreachable: OperationalError")


def test_it_reads_the_services_variables_with_the_same_defaults() -> None:
    # it skips the settings to start fast; their defaults must not drift apart
    assert Settings.model_fields["mqtt_url"].default == MQTT_URL
    assert DATABASE_URL == DEFAULT_DATABASE_URL
    assert mqtt_port("mqtt://cpm-ingest-1:p%40ss@mosquitto") == 1883
    assert mqtt_port("mqtts://mosquitto") == 8883
    assert mqtt_port("mqtt://mosquitto:1884") == 1884


def test_the_health_command_exits_1_naming_what_is_wrong(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CPM_ID_HASH_SECRET": TEST_SECRET,
        "CPM_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "CPM_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.deploy.health", "--broker", "--database"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no connection to the broker" in done.stderr
    assert "database" not in done.stderr  # SQLite answers (the file is created)
    done = subprocess.run(
        [sys.executable, "-m", "services.deploy.health"], capture_output=True, text=True,
        env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "say what to check" in done.stderr


def test_seed_if_empty_loads_once_then_succeeds_without_loading(database_url: str) -> None:
    env = {**os.environ, "CPM_ID_HASH_SECRET": TEST_SECRET, "CPM_DATABASE_URL": database_url}
    seed = [sys.executable, "-m", "services.cli", "seed", "--demo", "--people", "50"]

    def cpmon(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*seed, *extra], capture_output=True, text=True, env=env, timeout=120)

    first = cpmon("--if-empty")
    assert first.returncode == 0 and "loaded demo community" in first.stdout, first.stderr
    again = cpmon("--if-empty")
    assert again.returncode == 0 and "nothing loaded" in again.stdout
    refused = cpmon()  # without the flag a second load is still an error
    assert refused.returncode != 0 and "already holds" in refused.stderr + refused.stdout
