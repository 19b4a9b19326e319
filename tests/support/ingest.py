"""Talking to a running ingest in the tests: its device topics, device timestamps, and
the rows it stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from services.ingest.service import IngestService
from tests.support.waiting import count


def stamp(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def topic(service: IngestService, checkpoint: str, kind: str) -> str:
    return f"{service.settings.topic_prefix}/cp/{checkpoint}/{kind}"


def stored(engine: Engine, table: str) -> int:
    return count(engine, f"SELECT count(*) FROM {table}")
