"""The end-of-emergency purge and the audit trail of command-line actions, through
`cpmon` on a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from services.alerts.event_rules import Finding
from services.alerts.store import raise_alert
from services.api.auth import create_key_in
from services.cli import main as cpmon
from services.core.db import utcnow
from services.core.enums import Role
from services.core.models.alerts import AlertType
from services.core.settings import get_settings
from services.core.tables import rollup_t
from tests.support.env import TEST_SECRET


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_ID_HASH_SECRET", TEST_SECRET)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one())


def audit(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, role, detail FROM audit_log ORDER BY id"))
        return [(r[0], r[1], r[2] or "") for r in rows]


def test_purge_deletes_personal_data_keeps_rollups_and_records_it(
    seeded_engine: Engine, cli_env: None
) -> None:
    finding = Finding(
        AlertType.FEVER, "cp-001", "res-01", "h:abc", "Fever", {"id_masked": "****123X"}
    )
    with seeded_engine.begin() as conn:
        raise_alert(conn, finding, utcnow(), timedelta(minutes=2))
        hour = utcnow().replace(minute=0, second=0, microsecond=0)
        conn.execute(insert(rollup_t).values(checkpoint_id="cp-001", bucket=hour, passages=5))
    people = count(seeded_engine, "person")
    assert people == 400
    assert cpmon(["privacy", "purge", "--reason", "emergency over"]) == 2  # needs --yes
    assert count(seeded_engine, "person") == people
    assert cpmon(["privacy", "purge", "--reason", "emergency over", "--yes"]) == 0
    for table in ("person", "pass", "vehicle", "quarantine", "passage", "reading", "dead_letter"):
        assert count(seeded_engine, table) == 0, table
    assert count(seeded_engine, "coverage_rollup") == 1 and count(seeded_engine, "checkpoint")
    with seeded_engine.connect() as conn:
        subject, details = conn.execute(text("SELECT subject, details FROM alert")).one()
        payloads = {r[0] for r in conn.execute(text("SELECT payload FROM outbox"))}
    assert (
        subject.startswith("purged-")
        and (details if isinstance(details, dict) else json.loads(details)) == {}
    )
    assert payloads <= {"{}"}
    action, role, detail = audit(seeded_engine)[-1]
    assert (action, role) == ("privacy.purge", "cli")
    recorded = json.loads(detail)
    assert recorded["reason"] == "emergency over" and recorded["deleted"]["person"] == people


def test_cli_key_revocation_and_registry_import_are_audited(
    seeded_engine: Engine, cli_env: None, tmp_path: Path
) -> None:
    key_id, _ = create_key_in(seeded_engine, Role.VIEWER, "wall screen")
    assert cpmon(["apikey", "revoke", str(key_id)]) == 0
    csv_file = tmp_path / "sites.csv"
    csv_file.write_text("id,name\nsite-cli-1,CLI site\n", encoding="utf-8")
    assert cpmon(["registry", "import", "sites", str(csv_file)]) == 0
    entries = audit(seeded_engine)
    assert ("api_key.revoke", "cli") in [(a, r) for a, r, _ in entries]
    imported = [d for a, r, d in entries if (a, r) == ("registry.import", "cli")]
    assert imported and json.loads(imported[0])["imported"] == 1
