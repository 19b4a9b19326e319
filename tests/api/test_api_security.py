"""Security headers a browser enforces, key guessing damped per client address, and
live streams that end when their key is revoked."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session
from sqlmodel import select as sqlmodel_select

from services.api.auth import find_session_key, session_token
from services.api.main import STATIC_DIR, create_app
from services.api.security import FailedAuth
from services.core.models.auth import ApiKey
from services.core.tables import auth_failure_t
from tests.support.api import assert_problem, bearer


def test_every_answer_carries_the_security_headers(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    answers = [
        client.get("/"),
        client.get("/js/app.js"),
        client.get("/api/v1/checkpoints", headers=bearer(api_keys["viewer"])),
        client.get("/api/v1/checkpoints"),  # 401
        client.get("/nowhere"),
        client.post("/api/v1/webhooks", content=b"x", headers={"Content-Length": str(10**9)}),
    ]
    for answer in answers:
        h = answer.headers
        csp = h["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp, answer.url
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
    for path in ("/docs", "/redoc"):
        docs = client.get(path).headers["content-security-policy"]
        # the docs pages load our own files only: no other origin, no inline script
        assert "script-src 'self';" in docs and "https://" not in docs, path
        assert "frame-ancestors 'none'" in docs, path


def test_the_dashboard_has_nothing_inline_that_the_policy_would_block() -> None:
    """The CSP allows scripts and styles from our own files only: no inline script, no
    event-handler or style attributes, no eval, nothing from another origin."""
    pages = list(STATIC_DIR.rglob("*.html"))
    scripts = [p for p in STATIC_DIR.joinpath("js").rglob("*.js")]
    assert pages and scripts
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S | re.I):
            assert not tag.strip(), f"inline script in {page.name}"
        assert not re.search(r"\son[a-z]+\s*=", html, flags=re.I), page.name
        assert not re.search(r"\sstyle\s*=", html, flags=re.I), page.name
        for url in re.findall(r"(?:src|href)\s*=\s*\"([^\"]+)\"", html):
            assert not re.match(r"(https?:)?//", url), f"{page.name} loads {url}"
    for script in scripts:
        code = script.read_text(encoding="utf-8")
        assert not re.search(r"\beval\(|new Function\(|\son[a-z]+=\\?\"", code), script.name
        assert "style=" not in code, script.name
        assert not re.search(r"<script", code, flags=re.I), script.name


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_guessed_keys_block_the_address_for_a_while(
    seeded_engine: Any, make_settings: Any, api_keys: dict[str, str]
) -> None:
    app = create_app(
        make_settings(api_auth_max_failures=3, api_auth_window_s=60, api_auth_block_s=120)
    )
    clock = Clock()
    app.state.failed_auth.clock = clock
    viewer = bearer(api_keys["viewer"])
    guesser = TestClient(app, raise_server_exceptions=False, client=("203.0.113.7", 40000))
    other = TestClient(app, raise_server_exceptions=False, client=("198.51.100.9", 40000))
    with guesser, other:
        for n in range(3):
            assert_problem(guesser.get("/api/v1/checkpoints", headers=bearer(f"cpm_guess{n}")), 401)
        # blocked: even the right key is refused, so a guesser cannot tell it found one
        blocked = guesser.get("/api/v1/checkpoints", headers=viewer)
        assert_problem(blocked, 429, "too many unknown API keys")
        assert blocked.headers["retry-after"] == "120"
        assert other.get("/api/v1/checkpoints", headers=viewer).status_code == 200
        # a missing key is not a guess: the other address may forget it any number of times
        for _ in range(5):
            assert_problem(other.get("/api/v1/checkpoints"), 401, "no API key")
        assert other.get("/api/v1/checkpoints", headers=viewer).status_code == 200
        clock.now += 60
        assert guesser.get("/api/v1/checkpoints", headers=viewer).headers["retry-after"] == "60"
        clock.now += 61
        assert guesser.get("/api/v1/checkpoints", headers=viewer).status_code == 200
        metrics = other.get("/metrics").text
        assert "cpm_api_auth_failures_total 3.0" in metrics
        assert "cpm_api_auth_blocks_total 1.0" in metrics


def test_the_block_holds_across_api_replicas(
    seeded_engine: Any, make_settings: Any, api_keys: dict[str, str]
) -> None:
    """Two API processes on one database: guesses spread over both meet one count, and
    the block is enforced by both (the counts live in `auth_failure`)."""
    settings = make_settings(api_auth_max_failures=4, api_auth_window_s=60, api_auth_block_s=120)
    replicas = [create_app(settings), create_app(settings)]
    viewer = bearer(api_keys["viewer"])
    address = ("203.0.113.8", 40000)
    clients = [TestClient(app, raise_server_exceptions=False, client=address) for app in replicas]
    with clients[0] as first, clients[1] as second:
        for n in range(2):
            assert_problem(first.get("/api/v1/whoami", headers=bearer(f"cpm_a{n}")), 401)
            assert_problem(second.get("/api/v1/whoami", headers=bearer(f"cpm_b{n}")), 401)
        for replica in (first, second):
            assert_problem(replica.get("/api/v1/whoami", headers=viewer), 429)
    with seeded_engine.connect() as conn:
        row = conn.execute(
            select(auth_failure_t).where(auth_failure_t.c.address == address[0])
        ).one()
    assert row.failures == 0 and row.blocked_until_s is not None


async def test_a_revoked_key_ends_its_open_alert_stream(
    served: str, api_app: FastAPI, api_keys: dict[str, str]
) -> None:
    api_app.state.sse_key_recheck_s = 0.1
    async with httpx.AsyncClient(timeout=20) as http:
        keys = (await http.get(f"{served}/api/v1/keys", headers=bearer(api_keys["admin"]))).json()
        viewer_id = next(k["id"] for k in keys if k["name"] == "test viewer")
        url = f"{served}/api/v1/alerts/stream"
        async with http.stream("GET", url, headers=bearer(api_keys["viewer"])) as response:
            assert response.status_code == 200
            revoked = await http.post(
                f"{served}/api/v1/keys/{viewer_id}/revoke", headers=bearer(api_keys["admin"])
            )
            assert revoked.status_code == 200, revoked.text

            async def until_the_end() -> list[str]:
                return [line async for line in response.aiter_lines()]

            lines = await asyncio.wait_for(until_the_end(), 60)  # a bound, not a timing
        assert "event: revoked" in lines
        assert (await http.get(url, headers=bearer(api_keys["viewer"]))).status_code == 401


HIDDEN_ID = "440305199001011236"


def test_problems_never_echo_submitted_values(client: TestClient, api_keys: dict[str, str]) -> None:
    """Whatever a client sends (an ID number in a body, a reference, a path), the
    problem answer names the field, not the value."""
    admin = bearer(api_keys["admin"])
    answers = [
        client.post(
            "/api/v1/people",
            json={"name": "x", "id_number": HIDDEN_ID[:-1] + "0", "site_id": "res-01"},
            headers=admin,
        ),
        client.post("/api/v1/people", json={"name": 5, "id_number": [HIDDEN_ID]}, headers=admin),
        client.post(
            "/api/v1/webhooks",
            json={"name": "w", "url": "https://hooks.example.com/", "checkpoint_id": HIDDEN_ID},
            headers=admin,
        ),
        client.post(
            "/api/v1/silences",
            json={
                "checkpoint_id": f"ID{HIDDEN_ID}x",
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-01-02T00:00:00Z",
                "reason": "r",
            },
            headers=admin,
        ),
        client.get("/api/v1/passages", params={"checkpoint_id": f"{HIDDEN_ID}\x00"}, headers=admin),
        client.get(f"/api/v1/checkpoints/{HIDDEN_ID}", headers=admin),
        client.get(f"/api/v1/no-such-route/{HIDDEN_ID}", headers=admin),
        client.post(
            "/api/v1/tracing/contacts", content=f'{{"id_number": {HIDDEN_ID}', headers=admin
        ),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
        body = answer.json()
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert HIDDEN_ID[:10] not in answer.text, answer.text
        for error in body.get("errors", []):
            assert set(error) == {"field", "message", "type"}
    assert "body.id_number" in answers[0].text
    # nor any other value: references that point nowhere are named by their field
    probe = "zz-echo-probe"
    refs = [
        client.post(
            "/api/v1/webhooks",
            json={"name": "w", "url": "https://hooks.example.com/", "site_id": probe},
            headers=admin,
        ),
        client.post(
            "/api/v1/keys",
            json={"name": "k", "role": "duty", "checkpoints": [probe]},
            headers=admin,
        ),
        client.get("/api/v1/metrics/coverage", params={"site_id": probe}, headers=admin),
        client.post(
            "/api/v1/silences",
            json={
                "site_id": probe,
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-01-02T00:00:00Z",
                "reason": "r",
            },
            headers=admin,
        ),
    ]
    for answer in refs:
        assert answer.status_code in (404, 422), (answer.status_code, answer.text)
        assert probe not in answer.text, answer.text


def test_the_dashboard_session_is_an_httponly_cookie_not_a_key(
    client: TestClient, api_keys: dict[str, str], make_settings: Any
) -> None:
    """The key is sent once; the cookie names no key, cannot be read by scripts nor
    sent by other sites, works for the alert stream, and dies with its key."""
    assert client.get("/api/v1/session").json() == {"signed_in": False, **NO_SESSION}
    opened = client.post("/api/v1/session", headers=bearer(api_keys["duty"]))
    assert opened.status_code == 200, opened.text
    assert opened.json()["role"] == "duty" and opened.json()["checkpoints"] == ["cp-001", "cp-002"]
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("cpm_session=v1.")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/api/v1"} <= flags
    assert api_keys["duty"] not in cookie and api_keys["duty"][4:20] not in cookie
    # the cookie alone authenticates (the test client keeps it)
    assert client.get("/api/v1/whoami").json()["role"] == "duty"
    assert client.get("/api/v1/session").json()["signed_in"] is True
    # writes through the cookie from another origin are refused
    cross = client.post(
        "/api/v1/alerts/1/acknowledge", json={}, headers={"Origin": "https://evil.example"}
    )
    assert_problem(cross, 403, "another origin")
    # this host behind a TLS proxy (the API sees http, the page is https) is this origin
    same = client.post(
        "/api/v1/alerts/999999/acknowledge", json={}, headers={"Origin": "https://testserver"}
    )
    assert_problem(same, 404)
    # a cookie cannot open a session of its own; a forged token is refused
    assert_problem(client.post("/api/v1/session"), 401)
    token = cookie.split(";")[0].split("=", 1)[1]
    parts = token.split(".")
    forged = ".".join([parts[0], parts[1], str(int(parts[2]) + 86400), parts[3]])
    client.cookies.set("cpm_session", forged, path="/api/v1")
    assert_problem(client.get("/api/v1/whoami"), 401, "session has ended")
    for junk in (f"v1.{2**40}.{parts[2]}.{parts[3]}", "v1.x.y.z", "v1..", "v1." + "9" * 300):
        client.cookies.set("cpm_session", junk, path="/api/v1")
        assert_problem(client.get("/api/v1/whoami"), 401, "session has ended")
        assert client.get("/api/v1/session").json()["signed_in"] is False
    client.cookies.set("cpm_session", token, path="/api/v1")
    # an expired token is refused too
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(ApiKey, int(parts[1]))
        assert row is not None
        secret = app_settings.id_hash_secret.get_secret_value()
        old = session_token(secret, row, 60, now=1000.0)
        assert find_session_key(session, secret, old) is None
        assert find_session_key(session, secret, token) is not None
    # sign out deletes the cookie
    closed = client.delete("/api/v1/session")
    assert closed.status_code == 204 and 'cpm_session=""' in closed.headers["set-cookie"]
    client.cookies.clear()
    assert_problem(client.get("/api/v1/whoami"), 401, "no API key")


NO_SESSION = {
    "key_id": None,
    "name": None,
    "role": None,
    "checkpoints": None,
    "expires_at": None,
}


async def test_the_alert_stream_takes_the_session_cookie_and_ends_on_revocation(
    served: str, api_app: FastAPI, api_keys: dict[str, str]
) -> None:
    api_app.state.sse_key_recheck_s = 0.1
    admin = bearer(api_keys["admin"])
    async with httpx.AsyncClient(timeout=20) as http:
        keys = (await http.get(f"{served}/api/v1/keys", headers=admin)).json()
        viewer_id = next(k["id"] for k in keys if k["name"] == "test viewer")
        opened = await http.post(f"{served}/api/v1/session", headers=bearer(api_keys["viewer"]))
        assert opened.status_code == 200
        browser = httpx.AsyncClient(timeout=20, cookies=opened.cookies)
        async with browser:
            url = f"{served}/api/v1/alerts/stream"
            async with browser.stream("GET", url) as response:
                assert response.status_code == 200
                revoked = await http.post(f"{served}/api/v1/keys/{viewer_id}/revoke", headers=admin)
                assert revoked.status_code == 200

                async def until_the_end() -> list[str]:
                    return [line async for line in response.aiter_lines()]

                lines = await asyncio.wait_for(until_the_end(), 60)  # a bound, not a timing
            assert "event: revoked" in lines
            assert_problem(await browser.get(f"{served}/api/v1/whoami"), 401, "session")
            assert (await browser.get(f"{served}/api/v1/session")).json()["signed_in"] is False


def test_addresses_are_forgotten_once_their_count_and_block_are_over(seeded_engine: Any) -> None:
    """`auth_failure` holds client addresses (personal data): a row goes once its window
    and its block are over, when the next count starts."""
    clock = Clock()
    failed = FailedAuth(seeded_engine, limit=2, window_s=60, block_s=120, clock=clock)

    def addresses() -> set[str]:
        with seeded_engine.connect() as conn:
            return set(conn.execute(select(auth_failure_t.c.address)).scalars())

    failed.failed("198.51.100.1")  # one failure, no block
    assert failed.failed("198.51.100.2") is False
    assert failed.failed("198.51.100.2") is True  # blocked for 120 s
    clock.now += 61  # the first's window is over, the second's block is not
    failed.failed("198.51.100.3")
    assert addresses() == {"198.51.100.2", "198.51.100.3"}
    assert failed.retry_after("198.51.100.2") == 59
    clock.now += 60
    failed.failed("198.51.100.4")
    assert addresses() == {"198.51.100.3", "198.51.100.4"}
    assert failed.retry_after("198.51.100.2") is None


async def test_a_stream_opened_with_a_session_ends_when_the_session_expires(
    served: str, api_app: FastAPI, api_keys: dict[str, str]
) -> None:
    api_app.state.sse_key_recheck_s = 0.1
    secret = api_app.state.settings.id_hash_secret.get_secret_value()
    with Session(api_app.state.engine) as session:
        row = next(k for k in session.exec(sqlmodel_select(ApiKey)) if k.name == "test viewer")
        token = session_token(secret, row, 10)  # slack for a slow machine to open the stream
    cookies = httpx.Cookies()
    cookies.set("cpm_session", token, path="/api/v1")
    async with httpx.AsyncClient(timeout=30, cookies=cookies) as browser:
        async with browser.stream("GET", f"{served}/api/v1/alerts/stream") as response:
            assert response.status_code == 200

            async def until_the_end() -> list[str]:
                return [line async for line in response.aiter_lines()]

            lines = await asyncio.wait_for(until_the_end(), 60)  # a bound, not a timing
        assert "event: revoked" in lines and any("session has ended" in x for x in lines)
        assert_problem(await browser.get(f"{served}/api/v1/whoami"), 401, "session")
