"""Request body size limits, enforced before anything parses or authenticates.

FastAPI reads and parses a JSON body before it runs the route's dependencies (the key
check among them), so without a bound an anonymous client could make every replica
hold a body of any size. This ASGI middleware answers 413 from the declared
`Content-Length` without reading a byte of the body, and counts streamed (chunked)
bytes as the application receives them, so a body without a length is cut off at the
limit too: at most `limit` bytes plus one chunk are ever buffered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the streamed body passes the limit; FastAPI passes
    HTTP exceptions from body reading through to the problem handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {describe(limit)}")
        self.limit = limit


def describe(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


class BodySizeLimitMiddleware:
    """`default_limit` bytes for every request body; `prefix_limits` pairs of (path
    prefix, limit) for the few routes that take more (the registry CSV import)."""

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        prefix_limits: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.prefix_limits = tuple(prefix_limits)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefix_limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.limit_for(path)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await answer(send, 400, path, "the Content-Length header is not a number")
                return
            if int(text) > limit:
                log.info("body refused: %s declares %s bytes (limit %d)", path, text, limit)
                await answer(send, 413, path, f"the request body is larger than {describe(limit)}")
                return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("body refused: %s streamed over %d bytes", path, limit)
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside FastAPI's body handling
            if started:
                raise
            await answer(send, 413, path, str(exc.detail))


async def answer(send: Send, status: int, path: str, detail: str) -> None:
    """A problem answer of our own, before the application has seen the request; the
    connection is closed since the body was not read."""
    title = HTTPStatus(status).phrase
    body = json.dumps(
        {
            "type": PROBLEM_BASE + title.lower().replace(" ", "-"),
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
