"""Shared fixtures: real databases (SQLite and PostgreSQL) and the real broker.

- `database_url` runs a test once per engine in CPM_TEST_DATABASES (default both),
  each test on a fresh, migrated database of its own.
- `mqtt_url` is the broker on 127.0.0.1:1883 (CPM_TEST_MQTT_URL to change it);
  `topic_prefix` keeps each test's topics apart from every other test's.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text

from services.core.db import make_engine
from services.core.demo import DemoCommunity, generate_community
from services.core.migrate import upgrade
from services.core.seed import load_demo
from services.core.settings import Settings
from tests.support.databases import DATABASES, fresh_database, pg_admin, pg_url
from tests.support.env import LOOPBACK_ALLOW, MQTT_URL, TEST_SECRET

pytest_plugins = ["tests.support.api"]  # the API tests' fixtures (api_app, client, api_keys)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"cpm_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to head, on each engine in turn."""
    with fresh_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def topic_prefix() -> str:
    return f"test/{uuid.uuid4().hex[:10]}/cpm/v1"


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    parts = urlsplit(MQTT_URL)
    try:
        socket.create_connection((parts.hostname, parts.port or 1883), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"no MQTT broker at {MQTT_URL} ({exc}); start mosquitto (see .ci/run)")
    return MQTT_URL


@pytest.fixture
def make_settings(database_url: str, topic_prefix: str) -> Any:
    """Settings for this test's database and topics, with overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "mqtt_url": MQTT_URL,
            "topic_prefix": topic_prefix,
            "id_hash_secret": TEST_SECRET,
            "webhook_allow_hosts": LOOPBACK_ALLOW,  # the test receivers; default: refused
            "ingest_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
def small_community() -> DemoCommunity:
    """A small, deterministic community: 102 checkpoints, 400 people."""
    return generate_community(seed=7, people=400, vehicles=40, quarantined=6)


@pytest.fixture
def seeded_engine(engine: Engine, small_community: DemoCommunity) -> Engine:
    load_demo(engine, small_community, TEST_SECRET)
    return engine


@pytest.fixture
def ingest(seeded_engine: Engine, make_settings: Any, mqtt_url: str) -> Iterator[Any]:
    """A running ingest service on this test's seeded database and topics."""
    from services.ingest.service import IngestService

    service = IngestService(make_settings(ingest_session_expiry_s=60), seeded_engine)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def device(mqtt_url: str) -> Iterator[Any]:
    """A device-like MQTT publisher (QoS 1)."""
    from tests.support.mqtt import Publisher

    publisher = Publisher(mqtt_url)
    yield publisher
    publisher.close()
