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


def test_ids_in_device_chosen_identifiers_become_stable_keyed_tokens() -> None:
    """Message and staff ids must stay unique and keep matching each other, so they get
    keyed tokens, not the masked tail (two IDs sharing a tail would collide)."""
    from services.core.identity import pseudonymise_ids

    other = HIDDEN[:-4] + "0012"
    token = pseudonymise_ids("k" * 40, f"m-{HIDDEN}")
    assert HIDDEN[:10] not in token and token.startswith("m-#") and len(token) == 3 + 12
    assert pseudonymise_ids("k" * 40, f"m-{HIDDEN}") == token
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in HIDDEN)
    assert pseudonymise_ids("k" * 40, f"m-{full_width}") == token
    assert pseudonymise_ids("k" * 40, f"m-{other}") != token
    assert pseudonymise_ids("another secret" * 3, f"m-{HIDDEN}") != token
    assert pseudonymise_ids("k" * 40, "msg-000123") == "msg-000123"


def test_log_lines_never_carry_an_id_number() -> None:
    """The formatters mask ID-shaped numbers in the finished line: a library's debug
    line quoting a topic, an access log line quoting a URL."""
    import logging

    from services.core.logs import JsonFormatter, TextFormatter

    record = logging.LogRecord(
        "paho", logging.DEBUG, __file__, 1, "PUBLISH topic %s", (f"p/cp/{HIDDEN}/entry",), None
    )
    record.msg_id = f"m{HIDDEN}"
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert HIDDEN[:10] not in line and "1236" in line
