"""How `cpmon up` picks its broker, and the configuration it gives a local mosquitto."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.deploy.broker import (
    EMBEDDED_USERNAME,
    BrokerPlan,
    BrokerUnavailable,
    plan_broker,
)
from services.deploy.mosquitto import (
    TlsListener,
    adapt_config,
    dynsec_plugin_path,
    project_config_text,
)
from services.deploy.up import (
    UpOptions,
    api_address,
    backfill_start,
    child_environment,
    service_specs,
)
from tests.support.env import TEST_SECRET, free_port


def settings(url: str) -> Any:
    from services.core.settings import Settings

    return Settings(_env_file=None, mqtt_url=url, id_hash_secret=TEST_SECRET)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_broker_that_answers_is_used(listening_port: int, tmp_path: Path) -> None:
    plan = plan_broker(settings(f"mqtt://127.0.0.1:{listening_port}"), tmp_path)
    assert plan.kind == "configured" and plan.process is None and plan.env == {}


def test_a_remote_broker_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerUnavailable, match="no MQTT broker answers"):
        plan_broker(settings("mqtt://192.0.2.1:1883"), tmp_path)  # TEST-NET: never answers
    with pytest.raises(BrokerUnavailable, match="without TLS"):
        plan_broker(settings(f"mqtts://127.0.0.1:{free_port()}"), tmp_path)


def test_local_mosquitto_gets_the_project_configuration(tmp_path: Path) -> None:
    port = free_port()
    plan = plan_broker(settings(f"mqtt://127.0.0.1:{port}"), tmp_path, mosquitto="/x/mosquitto")
    assert plan.kind == "mosquitto" and plan.process is not None
    assert plan.process.argv[0] == "/x/mosquitto" and plan.process.tier == 0
    config = (tmp_path / "mosquitto" / "mosquitto.conf").read_text()
    assert f"listener {port} 127.0.0.1" in config
    assert "max_queued_messages 0" in config and "persistence true" in config
    assert "allow_anonymous true" in config and "password_file" not in config


def test_without_mosquitto_the_embedded_broker_and_its_settings(tmp_path: Path) -> None:
    port = free_port()
    plan = plan_broker(settings(f"mqtt://127.0.0.1:{port}"), tmp_path, use_mosquitto=False)
    assert plan.kind == "amqtt" and plan.process is not None
    assert "services.deploy.embedded_broker" in plan.process.argv
    assert plan.env == {
        "CPM_MQTT_URL": f"mqtt://{EMBEDDED_USERNAME}@127.0.0.1:{port}",
        "CPM_MQTT_PROTOCOL": "3.1.1",
        "CPM_INGEST_SHARED_GROUP": "",
    }


def test_adapt_config_replaces_only_machine_specific_lines(tmp_path: Path) -> None:
    text = adapt_config(
        project_config_text(), port=1999, data_dir=tmp_path,
        dynsec_file=tmp_path / "dynsec.json",
        tls=TlsListener(1998, tmp_path / "s.crt", tmp_path / "s.key"),
    )  # fmt: skip
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [line for line in lines if line.startswith("listener")] == [
        "listener 1999 127.0.0.1",
        "listener 1998 127.0.0.1",
    ]
    assert f"plugin_opt_config_file {tmp_path}/dynsec.json" in lines
    assert f"plugin {dynsec_plugin_path()}" in lines
    assert f"certfile {tmp_path}/s.crt" in lines
    assert not [line for line in lines if "/mosquitto/secrets" in line]
    assert "allow_anonymous false" in lines and "allow_anonymous true" not in lines
    for kept in (
        "max_queued_messages 0",
        "max_queued_bytes 536870912",
        "autosave_interval 30",
        "message_size_limit 8192",
    ):
        assert kept in lines


def test_children_and_address() -> None:
    options = UpOptions(demo=True, simulate=True, host="0.0.0.0", port=9000, people=500)
    specs = service_specs(options, {}, ["cpmon"])
    assert [spec.name for spec in specs] == ["ingest", "alerts", "api", "simulator"]
    assert specs[2].argv == ["cpmon", "api", "--host", "0.0.0.0", "--port", "9000"]
    simulator = specs[3].argv
    assert simulator[:2] == ["cpmon", "simulate"] and "--people" in simulator
    assert simulator[simulator.index("--people") + 1] == "500"
    assert specs[3].tier > specs[0].tier  # the simulator stops first
    assert api_address(settings("mqtt://127.0.0.1:1"), options) == "http://127.0.0.1:9000"


def test_a_fresh_demo_backfills_history_before_the_alerts_and_the_live_simulator() -> None:
    options = UpOptions(demo=True, simulate=True, people=500, backfill_days=3)
    now = datetime(2026, 12, 2, 8, 0, 30, 500, tzinfo=UTC)
    start = backfill_start(options, fresh=True, now=now)
    assert start == datetime(2026, 11, 29, 8, 0, 30, tzinfo=UTC)
    assert backfill_start(options, fresh=False, now=now) is None  # a restart: no replay
    assert backfill_start(replace(options, backfill_days=0), fresh=True, now=now) is None
    specs = {spec.name: spec for spec in service_specs(options, {}, ["cpmon"], start)}
    history = list(specs["backfill"].argv)
    assert history[history.index("--start") + 1] == "2026-11-29T08:00:30+00:00"
    assert history[history.index("--duration") + 1] == "3d"
    assert history[history.index("--speed") + 1] == "max"
    assert "--direct-ingest" in history  # into ingest's batch processor, not the broker
    # ingest and the API first, then the history, then the alerts and live devices
    assert specs["ingest"].tier == specs["api"].tier < specs["backfill"].tier
    assert specs["backfill"].tier < specs["alerts"].tier < specs["simulator"].tier
    assert "--start" not in specs["simulator"].argv  # live: its clock is the wall clock


def test_a_demo_on_a_reused_broker_leaves_no_session_that_never_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CPM_INGEST_SESSION_EXPIRY_S", raising=False)
    options = UpOptions(demo=True, simulate=True)
    demo = settings("mqtt://127.0.0.1:1")
    reused = BrokerPlan("configured", "127.0.0.1", 1883)
    started = BrokerPlan("mosquitto", "127.0.0.1", 1884)
    assert child_environment(demo, options, reused)["CPM_INGEST_SESSION_EXPIRY_S"] == "86400"
    assert "CPM_INGEST_SESSION_EXPIRY_S" not in child_environment(demo, options, started)
    monkeypatch.setenv("CPM_INGEST_SESSION_EXPIRY_S", "600")  # the operator's choice wins
    assert child_environment(demo, options, reused)["CPM_INGEST_SESSION_EXPIRY_S"] == "600"
