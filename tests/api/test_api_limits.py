"""Request body limits: an oversized body is refused (413) before it is read, parsed or
its key checked; hostile clients, with and without a Content-Length."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.main import create_app
from tests.support.api import assert_problem, bearer
from tests.support.env import MQTT_URL, TEST_SECRET, free_port
from tests.support.processes import tree_rss_kb
from tests.support.waiting import wait_until

MIB = 1024 * 1024
CHUNK = 64 * 1024


class CountingReceive:
    """An ASGI `receive` that streams `total` bytes of JSON-ish body in chunks and
    counts how many the application took."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.read = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        size = min(CHUNK, self.total - self.read)
        self.read += size
        return {
            "type": "http.request",
            "body": b"[" + b"1," * (size // 2 - 1) + b"1" if size else b"",
            "more_body": self.read < self.total,
        }


async def call(
    app: FastAPI, path: str, receive: CountingReceive, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_a_declared_oversized_body_is_refused_without_reading_a_byte(
    api_app: FastAPI,
) -> None:
    receive = CountingReceive(100 * MIB)
    status, body = await call(
        api_app, "/api/v1/webhooks", receive, [(b"content-length", str(100 * MIB).encode())]
    )
    assert status == 413 and receive.calls == 0
    problem = json.loads(body)
    assert problem["status"] == 413 and "1 MiB" in problem["detail"]


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(api_app: FastAPI) -> None:
    receive = CountingReceive(100 * MIB)  # chunked: no Content-Length, no key
    status, body = await call(api_app, "/api/v1/webhooks", receive, [])
    assert status == 413, body
    assert MIB < receive.read <= MIB + CHUNK  # the rest was never taken from the client
    assert json.loads(body)["detail"] == "the request body is larger than 1 MiB"


async def test_an_unauthenticated_import_is_refused_before_its_body_is_read(
    api_app: FastAPI,
) -> None:
    receive = CountingReceive(20 * MIB)
    status, _ = await call(api_app, "/api/v1/registry/import/people", receive, [])
    assert status == 401 and receive.read == 0


def test_the_import_streams_up_to_its_own_limit(
    seeded_engine: Any, make_settings: Any, api_keys: dict[str, str]
) -> None:
    app = create_app(make_settings(api_max_body_bytes=4096, api_max_import_bytes=64 * 1024))
    admin = {**bearer(api_keys["admin"]), "Content-Type": "text/csv"}
    header = "id,name\n"
    fits = header + "".join(f"lim-{n:05d},Site {n}\n" for n in range(1000))  # ~20 KiB
    assert 4096 < len(fits) < 64 * 1024
    too_big = header + "".join(f"lim-{n:05d},Site {n}\n" for n in range(5000))  # ~100 KiB

    def chunks(text: str) -> Iterator[bytes]:  # chunked transfer: no Content-Length
        data = text.encode()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/api/v1/registry/import/sites", content=fits, headers=admin)
        assert ok.status_code == 200 and ok.json()["imported"] == 1000, ok.text
        for body in (too_big, chunks(too_big)):
            refused = client.post("/api/v1/registry/import/sites", content=body, headers=admin)
            assert_problem(refused, 413, "64 KiB")
        # JSON routes keep the small limit; a body under it still works
        big_json = {"name": "x" * 5000, "url": "http://127.0.0.1:9/hook"}
        assert_problem(client.post("/api/v1/webhooks", json=big_json, headers=admin), 413)
        assert_problem(
            client.post(
                "/api/v1/webhooks", content=b"1", headers={**admin, "Content-Length": "x1"}
            ),
            400,
            "Content-Length",
        )


@pytest.fixture
def api_process(seeded_engine: Any, database_url: str) -> Iterator[tuple[int, str]]:
    """`cpmon api` in its own process, so its memory can be measured."""
    port = free_port()
    env = {
        **os.environ,
        "CPM_DATABASE_URL": database_url,
        "CPM_ID_HASH_SECRET": TEST_SECRET,
        "CPM_MQTT_URL": MQTT_URL,
        "CPM_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.2)
        yield proc.pid, base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def raw_post(port: int, headers: str, first_bytes: bytes) -> bytes:
    """Send the head and the first bytes of a body, then read the answer. The API may
    answer 413 before the body (by Content-Length) or part way through it (chunked): the
    sending stops once it has, as a refused client's would, since sending on into a
    closed connection meets a reset that can also discard the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(headers.encode())
        body = memoryview(first_bytes)
        sent = 0
        wait = 0.2  # for an answer to the head alone
        while sent < len(body) and not select.select([sock], [], [], wait)[0]:
            wait = 0.0
            try:
                sent += sock.send(body[sent : sent + 65536])
            except (ConnectionResetError, BrokenPipeError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            answer += piece
        return answer


def test_api_memory_stays_flat_under_oversized_anonymous_bodies(
    api_process: tuple[int, str],
) -> None:
    """The issue's attack: 100 MB JSON bodies without a key took the API from 113 to
    400 MB. Only the first MiB of each is sent: the answer must come without the rest."""
    pid, base = api_process
    port = int(base.rsplit(":", 1)[1])
    httpx.post(f"{base}/api/v1/webhooks", json={"warm": "up"})  # import what a request needs
    before = tree_rss_kb(pid)
    head = (
        "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MIB}\r\n\r\n"
    )
    for _ in range(10):
        answer = raw_post(port, head, b"[" + b"1," * (MIB // 2))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # chunked, with no length to refuse up front: cut off after the limit
    chunked_head = (
        "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (CHUNK, b"1" * CHUNK)
    for _ in range(3):
        answer = raw_post(port, chunked_head, chunk * 20)  # 1.25 MiB, over the 1 MiB limit
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    grown_mb = (tree_rss_kb(pid) - before) / 1024
    assert grown_mb < 20, f"the API grew by {grown_mb:.0f} MB"
