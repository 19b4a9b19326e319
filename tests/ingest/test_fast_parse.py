"""The parse fast path (`parse.fast_message`: pydantic's JSON parser, one pass) against
the full path (`protocol.parse_message`: json.loads, then the model): whatever the
bytes, the fast path either gives the very message the full path gives, or steps aside
(None), so every dead-letter reason and detail stays the full path's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.protocol import MAX_PAYLOAD_BYTES, MESSAGE_TYPES, ProtocolError, parse_message
from services.ingest.parse import Accepted, Inbound, fast_message, parse_inbound

PREFIX = "t/cpm/v1"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
FIELDS = sorted({name for model in MESSAGE_TYPES.values() for name in model.model_fields})


def full_path(kind: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    try:
        return parse_message(kind, payload, max_bytes)
    except ProtocolError as error:
        return (error.reason, error.detail)


def assert_agrees(kind: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> bool:
    """True when the fast path took the payload (and gave the full path's message)."""
    fast = fast_message(kind, payload, max_bytes)
    expected = full_path(kind, payload, max_bytes)
    if fast is None:
        return False
    assert type(fast) is type(expected)
    assert fast == expected
    assert fast.__dict__ == expected.__dict__  # same values, same types (enum, float)
    for name, value in fast.__dict__.items():
        assert type(value) is type(expected.__dict__[name]), name
    return True


ENTRY = {
    "msg_id": "m-1",
    "ts": "2026-12-02T12:00:00.123456+08:00",
    "direction": "in",
    "kind": "person",
    "id_number": "440305199001011234",
    "qr_pass": "QR1",
    "temp_c": 36.6,
}


def test_plain_messages_of_every_kind_take_the_fast_path() -> None:
    bodies = {
        "entry": ENTRY,
        "reading": {"msg_id": "r", "ts": "2026-12-02T12:00:00Z", "temp_c": 37, "direction": "out"},
        "duty": {"msg_id": "d", "ts": "2026-12-02T12:00:00Z", "staff_id": "s1", "action": "on"},
        "status": {"state": "online", "ts": "2026-12-02T12:00:00Z", "firmware": "1.2"},
        "heartbeat": {"ts": "2026-12-02T12:00:00Z", "uptime_s": 5, "backlog": 0},
    }
    for kind, body in bodies.items():
        assert assert_agrees(kind, json.dumps(body).encode()), kind


HOSTILE = [
    b'{"msg_id":"a","msg_id":"b","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person","x":NaN}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person","x":-Infinity}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person","temp_c":1e400}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person",'
    b'"temp_c":123456789012345678901234567890}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person","temp_c":true}',
    b'{"msg_id":"\\ud800","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a\\u0000","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a\tb","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a\x00b","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a\x7fb","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a",\x0b"ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a",\x00"ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'\r\n{"msg_id":"a",\t"ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}\n',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00","direction":"in","kind":"person"}',
    b'{"msg_id":"","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"up","kind":"person"}',
    b'{"msg_id":7,"ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"} x',
    b'\xef\xbb\xbf{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person"}',
    b'{"msg_id":"a","ts":"2026-12-02T12:00:00Z","direction":"in","kind":"person","x":'
    + b"[" * 300
    + b"]" * 300
    + b"}",
    b'["msg_id"]',
    b"",
    b"\xff\xfe",
    b'{"ts":"2026-12-02T12:00:00Z","uptime_s":18446744073709551616,"backlog":-1}',
    b'{"ts":"2026-12-02T12:00:00Z","uptime_s":1.0}',
    b'{"state":"online","ts":"2026-12-02T12:00:00Z","firmware":"x" }',
    b'{"state":"online","ts":"2026-12-02T12:00:00Z","firmware":"' + b"x" * 65 + b'"}',
]


@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize("kind", sorted(MESSAGE_TYPES))
def test_hostile_payloads_get_the_full_paths_answer(kind: str, payload: bytes) -> None:
    assert_agrees(kind, payload)


def test_an_oversize_payload_is_left_to_the_full_path() -> None:
    payload = json.dumps({**ENTRY, "pad": "x" * 100}).encode()
    assert fast_message("entry", payload, len(payload) - 1) is None
    assert full_path("entry", payload, len(payload) - 1)[0].value == "oversize"


def test_unknown_kinds_are_left_to_the_full_path() -> None:
    assert fast_message("entries", json.dumps(ENTRY).encode(), MAX_PAYLOAD_BYTES) is None


# --- property: generated bodies, serialised in several ways, then bytes mangled --------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(["in", "out", "person", "vehicle", "on", "off", "online", "offline"]),
    st.sampled_from(["2026-12-02T12:00:00Z", "2026-12-02T12:00:00.5+08:00", "2026-12-02"]),
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
bodies = st.dictionaries(st.sampled_from([*FIELDS, "extra", "id_no"]), values, max_size=9)


def serialise(body: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return json.dumps(body).encode()
    if style == 1:
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(body, separators=(",", ":"), indent=style - 2 or None).encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(MESSAGE_TYPES)),
    body=bodies,
    style=st.integers(0, 4),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    insert=st.binary(max_size=3),
)
def test_the_fast_path_never_disagrees(
    kind: str, body: dict[str, Any], style: int, cut: int | None, insert: bytes
) -> None:
    payload = serialise(body, style)
    if cut is not None:  # bytes in the middle of the document, or a document cut short
        payload = payload[:cut] + insert + payload[cut + len(insert) :]
    assert_agrees(kind, payload)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(MESSAGE_TYPES)),
    ts=st.datetimes(timezones=st.just(UTC)),
    temp=st.floats(min_value=30, max_value=45) | st.integers(30, 45),
    msg_id=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=70),
)
def test_well_formed_messages_mostly_take_the_fast_path(
    kind: str, ts: datetime, temp: float, msg_id: str
) -> None:
    body = {
        "msg_id": msg_id,
        "ts": ts.isoformat(),
        "temp_c": temp,
        "direction": "in",
        "kind": "person",
        "staff_id": "s",
        "action": "off",
        "state": "offline",
        "uptime_s": 3,
    }
    payload = json.dumps(body).encode()
    took = assert_agrees(kind, payload)
    plain = b"\\" not in payload and b"NaN" not in payload and b"Infinity" not in payload
    assert took == (plain and len(msg_id) <= 64)  # valid and plain: fast; else: full path


def test_parse_inbound_gives_the_same_result_with_a_topic_cache() -> None:
    topics: dict[str, tuple[str, str]] = {}
    known = {"cp1"}
    cases = [
        (f"{PREFIX}/cp/cp1/entry", json.dumps(ENTRY).encode()),
        (f"{PREFIX}/cp/cp1/entry", b"{"),
        (f"{PREFIX}/cp/cp2/entry", json.dumps(ENTRY).encode()),
        (f"{PREFIX}/cp/c p/entry", json.dumps(ENTRY).encode()),
        (f"{PREFIX}/cp/cp1/nope", json.dumps(ENTRY).encode()),
        ("other/cp/cp1/entry", json.dumps(ENTRY).encode()),
    ]
    for _ in range(2):  # the second round is served from the cache
        for topic, payload in cases:
            inbound = Inbound(topic, payload, NOW)
            cached = parse_inbound(inbound, PREFIX, known, MAX_PAYLOAD_BYTES, topics)
            plain = parse_inbound(inbound, PREFIX, known, MAX_PAYLOAD_BYTES)
            assert type(cached) is type(plain)
            if isinstance(cached, Accepted):
                assert cached == plain
            else:
                assert (cached.reason, cached.detail, cached.checkpoint_id, cached.kind) == (
                    plain.reason,  # type: ignore[union-attr]
                    plain.detail,  # type: ignore[union-attr]
                    plain.checkpoint_id,  # type: ignore[union-attr]
                    plain.kind,  # type: ignore[union-attr]
                )
    assert set(topics) == {f"{PREFIX}/cp/cp1/entry", f"{PREFIX}/cp/cp2/entry",
                           f"{PREFIX}/cp/cp1/nope"}  # fmt: skip
