"""No raw ID number survives ingest, however a device hides it: inside words, JSON
escapes, numbers, free-text fields, malformed messages (dead letters)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text

from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.ingest import stamp, stored, topic

HIDDEN = "440305199001011236"
ESCAPED = "".join(f"\\u{ord(ch):04x}" for ch in HIDDEN)


def every_text_cell(engine: Engine) -> list[str]:
    cells: list[str] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                cells += [str(value) for value in row if value is not None]
    return cells


def test_ids_hidden_in_device_messages_are_never_stored(
    ingest: IngestService, device: Publisher, seeded_engine: Engine
) -> None:
    def entry(n: int, **fields: Any) -> dict[str, Any]:
        return {"msg_id": f"priv{n}", "ts": stamp(-n), "direction": "in", **fields}

    cp = "cp-004"
    device.publish(topic(ingest, cp, "entry"), entry(1, kind="person", qr_pass=f"ID{HIDDEN}"))
    device.publish(topic(ingest, cp, "entry"), entry(2, kind="person", qr_pass=f"a{HIDDEN[:-1]}Xb"))
    device.publish(
        topic(ingest, cp, "reading"),
        {
            "msg_id": "priv3",
            "ts": stamp(-3),
            "temp_c": 36.5,
            "direction": "in",
            "operator": f"op {HIDDEN[:6]} {HIDDEN[6:]}",
        },
    )
    # malformed: dead letters, with the ID escaped, as a number, inside a word
    raw = f'{{"msg_id": "priv4", "ts": "nope", "qr_pass": "{ESCAPED}"}}'
    device.publish(topic(ingest, cp, "entry"), raw.encode())
    device.publish(topic(ingest, cp, "entry"), f'{{"id": {HIDDEN}, "kind": 7}}'.encode())
    device.publish(topic(ingest, cp, "entry"), f"garbage ID{HIDDEN} {{".encode())
    wait_until(lambda: stored(seeded_engine, "passage") == 2)
    wait_until(lambda: stored(seeded_engine, "dead_letter") == 3)
    assert ingest.wait_idle()
    cells = every_text_cell(seeded_engine)
    joined = "\n".join(cells)
    assert HIDDEN[:10] not in joined.replace(" ", "")
    assert ESCAPED[:30] not in joined
    with seeded_engine.connect() as conn:
        codes = {r[0] for r in conn.execute(text("SELECT qr_pass FROM passage"))}
    assert codes == {"ID**************1236", "a**************123Xb"}
