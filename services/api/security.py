"""Browser-facing hardening and brute-force damping.

- `SecurityHeadersMiddleware`: a Content-Security-Policy without inline script (the
  dashboard loads only its own files), no framing, no MIME sniffing, no referrer. The
  interactive docs (`/docs`, `/redoc`) load Swagger UI / ReDoc from our own files too, but
  both set inline styles and ReDoc searches in a blob: worker, so they get a policy
  allowing exactly that.
- `FailedAuth`: unknown or revoked keys counted per client address; past the limit the
  address is blocked for a while (429 with Retry-After), logged and counted. Counted in
  the database, so the block holds across API replicas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, case, delete, or_, select, update
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.tables import auth_failure_t, dialect_insert

log = logging.getLogger(__name__)

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
FIXED_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else DASHBOARD_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = csp
                for name, value in FIXED_HEADERS:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class FailedAuth:
    """At most `limit` failed key checks per address within `window_s`; then the address
    is refused for `block_s` (a correct key too: a guesser must not learn it found one).

    Counted in the `auth_failure` table, one row per address, with one atomic upsert per
    failure: every API replica sees the same count and the same block. The count is per
    fixed window (it restarts `window_s` after its first failure)."""

    def __init__(
        self,
        engine: Engine,
        limit: int,
        window_s: float,
        block_s: float,
        clock: Callable[[], float] = time.time,
        on_block: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.limit, self.window_s, self.block_s = limit, window_s, block_s
        self.clock = clock
        self.on_block = on_block

    def retry_after(self, address: str) -> int | None:
        """Seconds the address is still blocked for, or None."""
        t = auth_failure_t.c
        with self.engine.connect() as conn:
            until = conn.execute(
                select(t.blocked_until_s).where(t.address == address[:64])
            ).scalar_one_or_none()
        now = self.clock()
        if until is None or now >= until:
            return None
        return max(1, int(until - now + 0.999))

    def failed(self, address: str) -> bool:
        """Count a failure; True when it blocks the address."""
        address = address[:64]
        now = self.clock()
        t = auth_failure_t.c
        stale = t.window_start_s <= now - self.window_s
        with self.engine.begin() as conn:
            insert = dialect_insert(conn, auth_failure_t).values(
                address=address, window_start_s=now, failures=1, blocked_until_s=None
            )
            upsert = insert.on_conflict_do_update(
                index_elements=[t.address],
                set_={
                    "failures": case((stale, 1), else_=t.failures + 1),
                    "window_start_s": case((stale, now), else_=t.window_start_s),
                },
            ).returning(t.failures)
            failures = int(conn.execute(upsert).scalar_one())
            if failures == 1:  # a new count: forget addresses whose count and block are over
                conn.execute(
                    delete(auth_failure_t).where(
                        t.window_start_s < now - self.window_s,
                        or_(t.blocked_until_s.is_(None), t.blocked_until_s < now),
                    )
                )
            if failures < self.limit:
                return False
            conn.execute(
                update(auth_failure_t)
                .where(t.address == address)
                .values(failures=0, window_start_s=now, blocked_until_s=now + self.block_s)
            )
        log.warning(
            "auth_blocked: %s failed %d key checks within %.0f s; blocked for %.0f s",
            address,
            self.limit,
            self.window_s,
            self.block_s,
        )
        if self.on_block is not None:
            self.on_block(address)
        return True
