"""Local stand-ins for the three group robots, on 127.0.0.1 only.

Each implements its robot's documented contract: the URL with its token, the message
format and size limits, the signature (DingTalk: `timestamp` + `sign` query parameters,
HMAC-SHA256 keyed with the secret over "timestamp\\nsecret"; Feishu: `timestamp` + `sign`
in the body, HMAC-SHA256 keyed with "timestamp\\nsecret" over nothing), the timestamp
window (one hour), 20 messages a minute (DingTalk then refuses for 10 minutes), and the
codes of docs/alerts.md. The signature checks are written here from the robots' docs,
not imported from the code under test.

Where a robot's code for a failure is not documented (an unknown token, a malformed
message), the receiver answers a stand-in code that is neither 0 nor a rate-limit code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RATE_LIMIT = {"dingtalk": 130101, "wecom": 45009, "feishu": 11232}
STAND_IN_UNKNOWN_TOKEN = 93000
STAND_IN_BAD_MESSAGE = 40000


@dataclass
class Received:
    at: float
    path: str
    body: dict[str, Any]
    code: int
    reason: str = ""
    signed: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class RobotReceiver:
    kind: str
    secret: str = ""
    token: str = "0123456789abcdef0123456789abcdef"
    clock: Callable[[], float] = time.time
    per_minute: int = 20
    received: list[Received] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)
    blocked_until: float = 0.0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, answer = receiver.handle(self.path, raw)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        assert self.server.server_address[0] == "127.0.0.1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # --- what to paste into a route ----------------------------------------------------
    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        return {
            "wecom": f"{base}/cgi-bin/webhook/send?key={self.token}",
            "dingtalk": f"{base}/robot/send?access_token={self.token}",
            "feishu": f"{base}/open-apis/bot/v2/hook/{self.token}",
        }[self.kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- results -------------------------------------------------------------------
    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.ok]

    def refused(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if not r.ok]

    # --- the contract ----------------------------------------------------------------
    def handle(self, target: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            body = {}
        with self.lock:
            code, reason, signed = self._judge(parts.path, query, body, raw, now)
            self.received.append(Received(now, parts.path, body, code, reason, signed))
            if code == RATE_LIMIT[self.kind] and self.kind == "dingtalk":
                self.blocked_until = max(self.blocked_until, now + 600)
        return 200, self._answer(code, reason)

    def _answer(self, code: int, reason: str) -> dict[str, Any]:
        if self.kind == "feishu":
            msg = "success" if code == 0 else reason
            return {"code": code, "msg": msg, "data": {}, "StatusCode": code, "StatusMessage": msg}
        return {"errcode": code, "errmsg": "ok" if code == 0 else reason}

    def _judge(
        self, path: str, query: dict[str, str], body: dict[str, Any], raw: bytes, now: float
    ) -> tuple[int, str, bool]:
        if not self._token_ok(path, query):
            return STAND_IN_UNKNOWN_TOKEN, "invalid webhook url", False
        if self.forced:
            code = self.forced.pop(0)
            return code, "forced by the test", False
        signed = False
        if self.secret:
            problem = self._signature_problem(query, body, now)
            if problem:
                return problem
            signed = True
        problem_text = self._format_problem(body, raw)
        if problem_text:
            if self.kind == "feishu":
                return 9499, f"Bad Request: {problem_text}", signed
            return STAND_IN_BAD_MESSAGE, problem_text, signed
        if now < self.blocked_until or self._sent_last_minute(now) >= self.per_minute:
            reason = {
                "dingtalk": "send too fast, exceed 20 times per minute",
                "wecom": "api freq out of limit",
                "feishu": "frequency limited",
            }[self.kind]
            return RATE_LIMIT[self.kind], reason, signed
        return 0, "", signed

    def _token_ok(self, path: str, query: dict[str, str]) -> bool:
        if self.kind == "wecom":
            return path == "/cgi-bin/webhook/send" and query.get("key") == self.token
        if self.kind == "dingtalk":
            return path == "/robot/send" and query.get("access_token") == self.token
        return path == f"/open-apis/bot/v2/hook/{self.token}"

    def _sent_last_minute(self, now: float) -> int:
        return sum(1 for r in self.received if r.ok and now - r.at < 60)

    def _signature_problem(
        self, query: dict[str, str], body: dict[str, Any], now: float
    ) -> tuple[int, str, bool] | None:
        if self.kind == "dingtalk":
            try:
                timestamp = int(query["timestamp"])
                offered = query["sign"]  # parse_qs has already URL-decoded it once
            except (KeyError, ValueError):
                return 310000, "sign not match", False
            if abs(now * 1000 - timestamp) > 3600 * 1000:
                return 310000, "invalid timestamp", False
            digest = hmac.new(
                self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(base64.b64encode(digest).decode(), offered):
                return 310000, "sign not match", False
            return None
        if self.kind == "feishu":
            try:
                timestamp = int(body["timestamp"])
                offered = str(body["sign"])
            except (KeyError, ValueError, TypeError):
                return 19021, "sign match fail or timestamp is not within one hour", False
            key = f"{timestamp}\n{self.secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if abs(now - timestamp) > 3600 or not hmac.compare_digest(expected, offered):
                return 19021, "sign match fail or timestamp is not within one hour", False
        return None

    def _format_problem(self, body: dict[str, Any], raw: bytes) -> str:
        if self.kind == "wecom":
            kind = body.get("msgtype")
            if kind == "markdown":
                content = (body.get("markdown") or {}).get("content")
                if not isinstance(content, str) or not content:
                    return "markdown.content missing"
                if len(content.encode()) > 4096:
                    return "markdown.content exceeds 4096 bytes"
                return ""
            if kind == "text":
                text = body.get("text") or {}
                if not isinstance(text.get("content"), str) or not text["content"]:
                    return "text.content missing"
                if len(text["content"].encode()) > 2048:
                    return "text.content exceeds 2048 bytes"
                if not isinstance(text.get("mentioned_mobile_list", []), list):
                    return "mentioned_mobile_list must be a list"
                return ""
            return f"unsupported msgtype {kind!r}"
        if self.kind == "dingtalk":
            if body.get("msgtype") != "markdown":
                return f"unsupported msgtype {body.get('msgtype')!r}"
            markdown = body.get("markdown") or {}
            if not markdown.get("title") or not markdown.get("text"):
                return "markdown.title and markdown.text are required"
            mobiles = (body.get("at") or {}).get("atMobiles", [])
            if not isinstance(mobiles, list):
                return "at.atMobiles must be a list"
            return ""
        if len(raw) > 20 * 1024:
            return "request body over 20 KB"
        if body.get("msg_type") != "post":
            return f"unsupported msg_type {body.get('msg_type')!r}"
        post = (body.get("content") or {}).get("post") or {}
        if not post or not set(post) <= {"zh_cn", "en_us"}:
            return "content.post needs zh_cn or en_us"
        for lang in post.values():
            if not isinstance(lang.get("title"), str) or not isinstance(lang.get("content"), list):
                return "post needs title and content"
            for paragraph in lang["content"]:
                for element in paragraph:
                    if element.get("tag") not in ("text", "a", "at"):
                        return f"unknown tag {element.get('tag')!r}"
        return ""


def text_of(kind: str, body: dict[str, Any]) -> str:
    """Everything a group member reads in a message."""
    if kind == "wecom":
        return str((body.get(body.get("msgtype", "")) or {}).get("content", ""))
    if kind == "dingtalk":
        markdown = body.get("markdown") or {}
        return f"{markdown.get('title', '')}\n{markdown.get('text', '')}"
    post = next(iter(((body.get("content") or {}).get("post") or {}).values()), {})
    pieces = [post.get("title", "")]
    for paragraph in post.get("content", []):
        pieces.append(
            "".join(
                e.get("text", "") + (f" {e['href']}" if e.get("href") else "") for e in paragraph
            )
        )
    return "\n".join(pieces)


def mentioned(kind: str, body: dict[str, Any]) -> list[str]:
    """Who the robot would @-mention (a DingTalk mobile counts only if also in the text)."""
    if kind == "wecom":
        return list((body.get("text") or {}).get("mentioned_mobile_list", []))
    if kind == "dingtalk":
        text = (body.get("markdown") or {}).get("text", "")
        return [m for m in (body.get("at") or {}).get("atMobiles", []) if f"@{m}" in text]
    post = next(iter(((body.get("content") or {}).get("post") or {}).values()), {})
    return [e["user_id"] for p in post.get("content", []) for e in p if e.get("tag") == "at"]
