"""Browser-facing hardening and brute-force damping.

- `SecurityHeadersMiddleware`: a Content-Security-Policy without inline script (the
  dashboard loads only its own files), no framing, no MIME sniffing, no referrer. The
  interactive docs (`/docs`, `/redoc`) load Swagger UI / ReDoc from a CDN with an inline
  bootstrap script, so they get a policy allowing exactly that.
- `FailedAuth`: unknown or revoked keys counted per client address; past the limit the
  address is blocked for a while (429 with Retry-After), logged and counted. In memory,
  per API process: each replica blocks on its own counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; "
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
    is refused for `block_s` (a correct key too: a guesser must not learn it found one)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        block_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_block: Callable[[str], None] | None = None,
    ) -> None:
        self.limit, self.window_s, self.block_s = limit, window_s, block_s
        self.clock = clock
        self.on_block = on_block
        self.failures: dict[str, deque[float]] = {}
        self.blocked_until: dict[str, float] = {}
        self.lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds the address is still blocked for, or None."""
        with self.lock:
            until = self.blocked_until.get(address)
            now = self.clock()
            if until is None:
                return None
            if now >= until:
                del self.blocked_until[address]
                return None
            return max(1, int(until - now + 0.999))

    def failed(self, address: str) -> bool:
        """Count a failure; True when it blocks the address."""
        with self.lock:
            now = self.clock()
            recent = self.failures.setdefault(address, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window_s:
                recent.popleft()
            if len(recent) < self.limit:
                return False
            self.failures.pop(address, None)
            self.blocked_until[address] = now + self.block_s
            if len(self.failures) > 100_000:  # many addresses: forget the oldest half
                for stale in list(self.failures)[: len(self.failures) // 2]:
                    del self.failures[stale]
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
