"""The device vendors' test registry (docs/vendor/, docs/protocol.md "For device
vendors"): imported with the documented command, its people, passes and vehicles give
exactly the registration statuses the documentation lists, through the real ingest."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from services.cli import main as cpmon
from services.core.settings import get_settings
from services.ingest.service import IngestService
from tests.support import TEST_SECRET, Publisher, wait_until
from tests.support.ingest import stamp, stored, topic

VENDOR = Path(__file__).resolve().parents[2] / "docs" / "vendor"
# (id_number or plate, qr_pass, kind) -> the status docs/protocol.md promises
EXPECTED = [
    ("999999200001010011", "TEST-PASS-0001", "person", "registered"),
    ("999999200001010011", "TEST-PASS-0002", "person", "pass_mismatch"),
    ("999999200001010097", "TEST-PASS-0009", "person", "expired_pass"),
    ("99999920000101010X", None, "person", "no_pass"),
    ("99999920000101010X", "TEST-PASS-9999", "person", "unknown_pass"),
    ("999999200001010118", "TEST-PASS-0001", "person", "unknown_person"),
    ("999999200001010012", "TEST-PASS-0001", "person", "invalid_id"),
    ("粤BTEST1", None, "vehicle", "registered"),
    ("粤BTEST9", None, "vehicle", "unregistered_vehicle"),
]


def test_the_vendor_registry_imports_with_one_command_and_classifies_as_documented(
    ingest: IngestService,
    device: Publisher,
    seeded_engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_ID_HASH_SECRET", TEST_SECRET)
    get_settings.cache_clear()
    try:
        for entity in ("people", "passes", "vehicles"):  # the documented loop
            assert cpmon(["registry", "import", entity, str(VENDOR / f"{entity}.csv")]) == 0
    finally:
        get_settings.cache_clear()
    documented = (VENDOR.parent / "protocol.md").read_text(encoding="utf-8")
    assert "for e in people passes vehicles; do" in documented
    for n, (identity, qr_pass, kind, _status) in enumerate(EXPECTED):
        entry: dict[str, object] = {
            "msg_id": f"v{n}",
            "ts": stamp(-60 + n),
            "direction": "in",
            "kind": kind,
        }
        if kind == "person":
            entry["id_number"] = identity
            entry["temp_c"] = 36.5
            if qr_pass:
                entry["qr_pass"] = qr_pass
        else:
            entry["plate"] = identity
        device.publish(topic(ingest, "cp-001", "entry"), entry)
    wait_until(lambda: stored(seeded_engine, "passage") == len(EXPECTED))
    with seeded_engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT msg_id, registration FROM passage")).all())
    assert [rows[f"v{n}"] for n in range(len(EXPECTED))] == [e[3] for e in EXPECTED]
    for _identity, _qr, _kind, status in EXPECTED:
        assert f"`{status}`" in documented
