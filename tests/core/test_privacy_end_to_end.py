"""No raw ID number anywhere, after a run that hides them in every field.

Real processes (`cpmon ingest`, `cpmon alerts`, `cpmon api`, each logging at DEBUG to a
file), the real broker, a webhook receiver on loopback and an MQTT subscriber on the
alert topics. Devices hide ID numbers in every field they have (ID, QR code, plate,
operator, staff id, message ids, firmware, the topic, malformed messages), spelled
plainly, inside words, spaced, hyphenated, full-width and JSON-escaped; API clients
send them in bodies, paths and query strings. Then every table (both engines), every
log line of every process, every MQTT payload on the alert topics, every webhook body
and every API answer is searched for them.
"""

from __future__ import annotations

import json
import random
import re
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, inspect, text

from services.alerts import signing
from services.api.auth import Role, create_key_in
from services.core.demo import DemoCommunity, make_resident_id
from services.core.identity import is_valid_id
from tests.support import Collector, Publisher, free_port, wait_until
from tests.support.env import LOOPBACK_ALLOW
from tests.support.reliability import Process, service_env, start_ingest
from tests.support.webhooks import WebhookReceiver

pytestmark = pytest.mark.slow

_rng = random.Random(20260214)
# IDs to hide (fresh ones: unknown to the registry) and an old 15-digit ID
HIDDEN = [make_resident_id(_rng) for _ in range(8)]
OLD_ID = "440305850317123"  # first-generation, 15 digits: fits a 16-character plate
assert all(is_valid_id(number) for number in HIDDEN)


def full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if ch.isdigit() else ch for ch in text)


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


def stamp(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def fragments(number: str) -> list[str]:
    """What would betray a number: any 10 digits of it that are not its kept tail."""
    return [number[i : i + 10] for i in range(0, len(number) - 4 - 9)]


def normalised(text: str) -> str:
    """Undo every disguise before searching: JSON escapes, full-width forms, separators."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"[\s\-_.,:/%+]", "", text)


def leaks(where: str, text: str, numbers: list[str]) -> list[str]:
    """One line per number found, with the text around it."""
    flat = normalised(text)
    found = []
    for number in numbers:
        hits = [flat.find(fragment) for fragment in fragments(number) if fragment in flat]
        if hits:
            found.append(f"{where}: {number} in …{flat[max(hits[0] - 40, 0) : hits[0] + 40]}…")
    return found


def every_table(engine: Engine) -> dict[str, str]:
    dumped: dict[str, str] = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            dumped[table] = "\n".join(repr(tuple(row)) for row in rows)
    return dumped


class Api:
    """`cpmon api` in a process of its own, logging at DEBUG."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = Process(["api", "--host", "127.0.0.1", "--port", str(self.port)], env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.answers: list[str] = []

        def up() -> bool:
            assert self.process.alive(), self.process.log()[-3000:]
            try:
                return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.2)

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        answer = httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        self.answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        return answer


@pytest.fixture
def services(
    seeded_engine: Engine, database_url: str, mqtt_url: str, topic_prefix: str
) -> Iterator[dict[str, Any]]:
    debug = {"CPM_LOG_LEVEL": "DEBUG", "CPM_WEBHOOK_ALLOW_HOSTS": LOOPBACK_ALLOW}
    env = service_env(database_url, mqtt_url, topic_prefix, **debug)
    started: list[Process] = []
    try:
        started.append(
            start_ingest(database_url, mqtt_url, topic_prefix, f"priv-{free_port()}", **debug)
        )
        alerts = Process(["alerts", "--poll", "0.3", "--timers", "1"], env)
        started.append(alerts)
        api = Api(env)
        started.append(api.process)
        yield {"processes": started, "api": api}
    finally:
        for process in started:
            process.stop(timeout=30)
            process.close()


def test_no_raw_id_number_survives_anywhere(
    services: dict[str, Any],
    seeded_engine: Engine,
    small_community: DemoCommunity,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    api: Api = services["api"]
    admin = create_key_in(seeded_engine, Role.ADMIN, "privacy admin")[1]
    officer = create_key_in(seeded_engine, Role.OFFICER, "privacy officer")[1]
    duty = create_key_in(seeded_engine, Role.DUTY, "privacy duty", ["cp-001"])[1]
    quarantined = next(p for p in small_community.people if p.quarantined)
    registered = next(p for p in small_community.people if not p.quarantined)
    numbers = [*HIDDEN, OLD_ID, quarantined.id_number, registered.id_number]

    # a webhook route to a receiver on loopback, and a subscriber on the alert topics
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret)
    created = api.call(
        "POST", "/api/v1/webhooks", admin, json={"name": "hook", "url": receiver.url}
    )
    assert created.status_code == 201, created.text
    route_secret = created.json()["secret"]
    receiver.secret = route_secret
    collector = Collector(mqtt_url, f"{topic_prefix}/alerts/#")
    device = Publisher(mqtt_url)
    try:
        a, b, c, d, e, f, g, h = HIDDEN

        def publish(cp: str, kind: str, payload: Any) -> None:
            device.publish(f"{topic_prefix}/cp/{cp}/{kind}", payload)

        # passages: an unregistered ID (an alert), a quarantined person (an alert), and
        # IDs hidden in the QR code, the plate, the message ids
        publish(
            "cp-001",
            "entry",
            {
                "msg_id": f"m{a}",
                "ts": stamp(-60),
                "direction": "in",
                "kind": "person",
                "id_number": a,
            },
        )
        publish(
            "cp-001",
            "reading",
            {
                "msg_id": f"r-{a}",
                "ts": stamp(-59),
                "temp_c": 38.6,
                "direction": "in",
                "entry_msg_id": f"m{a}",
                "operator": f"op {b[:6]} {b[6:]}",
            },
        )
        publish(
            "cp-001",
            "entry",
            {
                "msg_id": "q1",
                "ts": stamp(-50),
                "direction": "out",
                "kind": "person",
                "id_number": quarantined.id_number,
            },
        )
        publish(
            "cp-002",
            "entry",
            {
                "msg_id": "q2",
                "ts": stamp(-40),
                "direction": "in",
                "kind": "person",
                "id_number": registered.id_number,
                "qr_pass": f'=HYPERLINK("x","ID{c}")',
            },
        )
        publish(
            "cp-002",
            "entry",
            {
                "msg_id": "q3",
                "ts": stamp(-39),
                "direction": "in",
                "kind": "vehicle",
                "plate": OLD_ID,
            },
        )
        publish(
            "cp-003",
            "entry",
            {
                "msg_id": "q4",
                "ts": stamp(-38),
                "direction": "in",
                "kind": "person",
                "id_number": full_width(d),
                "qr_pass": f"a{d[:-1]}Xb",
                "id_type": "resident_id",
            },
        )
        publish(
            "cp-003",
            "reading",
            {
                "msg_id": "q5",
                "ts": stamp(-37),
                "temp_c": 36.4,
                "direction": "in",
                "operator": full_width(e),
            },
        )
        publish(
            "cp-003",
            "entry",
            {
                "msg_id": "q6",
                "ts": stamp(-36),
                "direction": "in",
                "kind": "person",
                "qr_pass": "-".join([e[:6], e[6:14], e[14:]]),
            },
        )
        # duty, status: the staff id and the firmware
        publish(
            "cp-004",
            "duty",
            {"msg_id": "q7", "ts": stamp(-35), "staff_id": f"s{f}", "action": "on"},
        )
        publish("cp-004", "status", {"state": "online", "ts": stamp(-34), "firmware": f"v1-{f}"})
        # malformed: dead letters, an ID escaped, as a number, inside words, in the topic
        publish(
            "cp-005",
            "entry",
            f'{{"msg_id": "x1", "ts": "nope", "qr_pass": "{escaped(g)}"}}'.encode(),
        )
        publish("cp-005", "entry", f'{{"id_number": {g[:-1]}, "kind": 7}}'.encode())
        publish("cp-005", "reading", f"garbage ID{g} {{".encode())
        publish(h, "entry", {"msg_id": "x2", "ts": stamp(), "direction": "in", "kind": "person"})
        publish("cp-005", f"x{h}", b"{}")

        # the API: IDs in bodies, paths, query strings, problem answers
        api.call("POST", "/api/v1/people/lookup", officer, json={"id_number": a})
        api.call("POST", "/api/v1/people/lookup", officer, json={"id_number": f"{a[:-1]}0"})
        api.call(
            "POST",
            "/api/v1/tracing/contacts",
            officer,
            json={"id_number": quarantined.id_number, "from": stamp(-3600), "to": stamp(60)},
        )
        # registry text an administrator types: an ID pasted into a name or a unit is
        # masked, a pass code holding one is refused
        person = api.call(
            "POST",
            "/api/v1/people",
            admin,
            json={"name": f"张三{b}", "id_number": b, "site_id": "res-01", "unit": c},
        )
        assert person.status_code == 201, person.text
        person_id = person.json()["id"]
        api.call("PATCH", f"/api/v1/people/{person_id}", admin, json={"name": f"李四 {c}"})
        refused = api.call(
            "POST",
            "/api/v1/passes",
            admin,
            json={"person_id": person_id, "valid_from": stamp(), "code": f"QR{b}"},
        )
        assert refused.status_code == 422, refused.text
        csv_people = f"name,id_number,site_id,unit,resident\n王五{e},{e},res-01,{d},true\n"
        imported = api.call(
            "POST",
            "/api/v1/registry/import/people",
            admin,
            content=csv_people.encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        api.call("GET", f"/api/v1/checkpoints/{c}", admin)
        api.call("GET", "/api/v1/passages", admin, params={"checkpoint_id": d})
        api.call("GET", f"/api/v1/passages?qr_pass={escaped(d)}", admin)
        api.call(
            "POST",
            "/api/v1/silences",
            admin,
            json={
                "checkpoint_id": e,
                "starts_at": stamp(),
                "ends_at": stamp(60),
                "reason": f"r {e}",
            },
        )
        api.call("GET", f"/api/v1/people?name={f}", admin)

        # wait for the run to settle: passages, dead letters, alerts delivered
        def count(table: str) -> int:
            with seeded_engine.connect() as conn:
                return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())

        wait_until(lambda: count("passage") >= 6, timeout=60)
        wait_until(lambda: count("dead_letter") >= 5, timeout=60)
        wait_until(lambda: count("alert") >= 2, timeout=60)
        wait_until(lambda: len(receiver.accepted()) >= 2, timeout=60)
        wait_until(lambda: len(collector.messages) >= 2, timeout=60)
        time.sleep(2)  # let the alert service log and deliver what follows

        # read everything back through the API, as every role
        for key in (admin, officer, duty):
            for path in (
                "/api/v1/passages",
                "/api/v1/readings",
                "/api/v1/alerts",
                "/api/v1/dead-letters",
                "/api/v1/passages/export.csv",
                "/api/v1/readings/export.csv",
                "/api/v1/audit",
                "/api/v1/people",
                "/api/v1/checkpoints/cp-001",
                "/api/v1/staff",
            ):
                api.call("GET", path, key)
    finally:
        device.close()
        collector.close()
        receiver.stop()
    for process in services["processes"]:
        process.stop(timeout=30)  # flush the logs

    found: list[str] = []
    for table, dump in every_table(seeded_engine).items():
        found += leaks(f"table {table}", dump, numbers)
    for process in services["processes"]:
        found += leaks(f"log of {process.popen.args[3]}", process.log(), numbers)
    for topic, payload in collector.messages:
        found += leaks(f"mqtt {topic}", topic + payload.decode("utf-8", "replace"), numbers)
    for delivery in receiver.received:
        found += leaks("webhook body", json.dumps(delivery["body"], ensure_ascii=False), numbers)
    for answer in api.answers:
        found += leaks("API answer", answer, numbers)
    assert found == [], "\n".join(found)

    # the run did what it hid: rows, alerts, deliveries, log lines to search
    assert len(receiver.accepted()) >= 2 and all(d["verified"] for d in receiver.received)
    assert any("alerts" in topic for topic, _ in collector.messages)
    logs = [process.log() for process in services["processes"]]
    assert all(len(log.splitlines()) > 10 for log in logs), [len(x) for x in logs]
