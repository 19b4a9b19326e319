"""The one webhook receiver of the tests: an HTTP endpoint on a free local port that
verifies every signature, can fail its first requests (503 with Retry-After), hold
each request (a slow receiver), and go down and up again on the same port."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.alerts import signing
from services.alerts.egress import EgressPolicy
from tests.support.env import LOOPBACK_ALLOW, free_port

# what notifiers built by a test may reach: the receivers below, nothing else
LOOPBACK_EGRESS = EgressPolicy.parse(LOOPBACK_ALLOW)


class WebhookReceiver:
    def __init__(
        self, secret: str, failures: int = 0, hold_s: float = 0.0, *, start: bool = True
    ) -> None:
        self.secret, self.failures, self.hold_s = secret, failures, hold_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        if start:
            self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.in_flight.set()
                if receiver.hold_s:
                    time.sleep(receiver.hold_s)  # a slow receiver, not a test wait
                with receiver.lock:
                    fail = receiver.failures > 0
                    receiver.failures -= 1 if fail else 0
                    try:
                        signing.verify(receiver.secret, dict(self.headers), body, time.time())
                        verified = True
                    except signing.InvalidSignature:
                        verified = False
                    receiver.received.append(
                        {
                            "id": self.headers["webhook-id"],
                            "verified": verified,
                            "failed": fail,
                            "body": json.loads(body),
                        }
                    )
                self.send_response(503 if fail else 204)
                if fail:
                    self.send_header("Retry-After", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if not r["failed"]]

    def stop(self) -> None:
        """Down: the port is closed (connections refused) until `start` again."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    close = stop
