"""What the three group robots share: the route as a robot sees it, checking and
masking its credentials, and one notifier shape (sign, POST, read the robot's code).

A robot answers HTTP 200 with its own code in the body, so a 200 is not a delivery:
code 0 is. Its rate-limit codes are retried after the pause it documents; every other
code (bad signature, missing keyword, malformed message, unknown robot) would fail
the same way again and is not retried. Documented codes: docs/alerts.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx

from services.alerts.egress import RefusedTarget
from services.alerts.notifiers import (
    DeliveryResult,
    HttpNotifier,
    OutboundMessage,
    parse_retry_after,
)

STANDARD = "standard"
ROBOT_KINDS = ("wecom", "dingtalk", "feishu")
KINDS = (STANDARD, *ROBOT_KINDS)
MAX_MENTIONS = 20
ANSWER_CHARS = 500
_PHONE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
_FEISHU_USER = re.compile(r"^(all|[A-Za-z0-9_-]{1,64})$")


class InvalidRobotRoute(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RobotRoute:
    id: int
    name: str
    kind: str
    url: str
    secret: str
    language: str
    mentions: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RobotRoute:
        return cls(
            id=int(row["id"]),
            name=str(row["name"]),
            kind=str(row["kind"]),
            url=str(row["url"]),
            secret=str(row["secret"] or ""),
            language=str(row["language"] or "zh-CN"),
            mentions=tuple(row["mentions"] or ()),
        )


# --- checking what an admin pastes ------------------------------------------------------
def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def validate_url(kind: str, url: str) -> None:
    """The shape of the URL the robot's settings page shows (any host: test receivers
    and proxies are fine; which addresses may be reached is a separate rule)."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidRobotRoute("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        raise InvalidRobotRoute("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidRobotRoute("url must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise InvalidRobotRoute("url must not carry a user name or password")
    if parts.fragment:
        raise InvalidRobotRoute("url must not have a #fragment")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise InvalidRobotRoute("url has an invalid port") from None
    if kind == "wecom" and not _query(url).get("key"):
        raise InvalidRobotRoute("a WeCom robot URL ends in /cgi-bin/webhook/send?key=...")
    if kind == "dingtalk" and not _query(url).get("access_token"):
        raise InvalidRobotRoute("a DingTalk robot URL ends in /robot/send?access_token=...")
    if kind == "feishu" and not re.search(r"/open-apis/bot/v2/hook/[A-Za-z0-9-]+$", parts.path):
        raise InvalidRobotRoute("a Feishu robot URL ends in /open-apis/bot/v2/hook/<token>")
    if kind == "dingtalk" and {"timestamp", "sign"} & set(_query(url)):
        raise InvalidRobotRoute("paste the URL without timestamp/sign: they are added per request")


def validate_secret(kind: str, secret: str | None) -> None:
    if not secret:
        return
    if kind == "wecom":
        raise InvalidRobotRoute("WeCom group robots have no signing secret")
    if kind == "dingtalk" and not re.fullmatch(r"SEC[A-Za-z0-9]{8,160}", secret):
        raise InvalidRobotRoute("a DingTalk signing secret starts with SEC (加签)")
    if kind == "feishu" and not re.fullmatch(r"[A-Za-z0-9]{8,160}", secret):
        raise InvalidRobotRoute("a Feishu signing secret is letters and digits (签名校验)")


def validate_mentions(kind: str, mentions: list[str] | None) -> None:
    if not mentions:
        return
    if kind not in ROBOT_KINDS:
        raise InvalidRobotRoute("mentions are for robot routes (wecom, dingtalk, feishu)")
    if len(mentions) > MAX_MENTIONS:
        raise InvalidRobotRoute(f"at most {MAX_MENTIONS} mentions")
    pattern = _FEISHU_USER if kind == "feishu" else _PHONE
    what = "Feishu user ids (ou_... or all)" if kind == "feishu" else "phone numbers"
    for mention in mentions:
        if not isinstance(mention, str) or not pattern.match(mention):
            raise InvalidRobotRoute(f"mentions of a {kind} robot are {what}")


def validate(
    kind: str, url: str, secret: str | None, language: str, mentions: list[str] | None
) -> None:
    if kind not in KINDS:
        raise InvalidRobotRoute(f"kind must be one of {', '.join(KINDS)}")
    if language not in ("zh-CN", "en"):
        raise InvalidRobotRoute("language must be zh-CN or en")
    validate_mentions(kind, mentions)
    if kind == STANDARD:
        return
    validate_url(kind, url)
    validate_secret(kind, secret)


# --- never showing credentials ---------------------------------------------------------
def _tail(value: str) -> str:
    return "…" + value[-4:] if len(value) > 8 else "…"


def mask_url(url: str) -> str:
    """Scheme, host and path stay; user name and password become `***`; query values and
    long path segments (tokens) are cut to their last 4 characters: enough to tell two
    robots apart, useless to send."""
    try:
        parts = urlsplit(url)
        path = "/".join(_tail(seg) if len(seg) >= 16 else seg for seg in parts.path.split("/"))
        query = "&".join(f"{quote(k, safe='')}={_tail(v)}" for k, v in parse_qsl(parts.query))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        if parts.username or parts.password:  # stored for sending, never shown
            netloc = "***@" + netloc
        return urlunsplit((parts.scheme, netloc, path, query, ""))
    except ValueError:
        return "(invalid url)"


def mask_secret(secret: str) -> str:
    return _tail(secret) if secret else ""


def mask_mention(mention: str) -> str:
    if _PHONE.match(mention) and len(mention) >= 7:
        return mention[:3] + "****" + mention[-4:]
    return mention


# --- sending ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Codes:
    """How one robot answers: where its code is, which codes mean 'slow down' (and for
    how long, seconds)."""

    kind: str
    code_fields: tuple[str, ...]
    message_fields: tuple[str, ...]
    rate_limited: Mapping[int, float]

    def read(self, data: Any) -> tuple[int | None, str]:
        if not isinstance(data, dict):
            return None, ""
        code = next((data[f] for f in self.code_fields if isinstance(data.get(f), int)), None)
        message = next((str(data[f]) for f in self.message_fields if data.get(f)), "")
        # the answer is the receiver's text: one printable line before it reaches a log
        message = "".join(ch for ch in " ".join(message.split()) if ch.isprintable())
        return code, message[:200]


def interpret(response: httpx.Response, codes: Codes, now: float) -> DeliveryResult:
    answer = response.text[:ANSWER_CHARS]
    try:
        data = response.json()
    except ValueError:
        data = None
    code, message = codes.read(data)
    status = response.status_code
    if code is None:
        retryable = status == 429 or status >= 500 or 200 <= status < 300
        return DeliveryResult(
            False,
            status,
            error=f"HTTP {status} without a {codes.kind} code",
            retry_after_s=parse_retry_after(response.headers.get("retry-after"), now),
            retryable=retryable,
            answer=answer,
        )
    if code == 0 and 200 <= status < 300:
        return DeliveryResult(True, status, answer=answer, receiver_code=0)
    error = f"{codes.kind} code {code}: {message}" if message else f"{codes.kind} code {code}"
    if code in codes.rate_limited:
        return DeliveryResult(
            False,
            status,
            error=error,
            retry_after_s=codes.rate_limited[code],
            retryable=True,
            answer=answer,
            receiver_code=code,
        )
    return DeliveryResult(
        False, status, error=error, retryable=False, answer=answer, receiver_code=code
    )


class RobotNotifier(HttpNotifier):
    """Signs (per robot), POSTs the robot's JSON and reads the robot's code. Like every
    notifier it never raises and never retries; the dispatcher does."""

    name = "robot"
    codes: Codes

    def signed(
        self, url: str, secret: str, body: dict[str, Any], now: float
    ) -> tuple[str, dict[str, Any]]:
        return url, body

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        if not message.url:
            return DeliveryResult(False, error="route has no url", retryable=False)
        now = self.wall_clock()
        try:
            body = json.loads(message.body)
            url, body = self.signed(message.url, message.secret or "", body, now)
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            target = self.egress.pin(url)  # resolved and checked, every time
            response = target.post(
                self.client, content, {"content-type": "application/json; charset=utf-8"}
            )
        except RefusedTarget as exc:  # names the address, never the URL (a credential)
            return DeliveryResult(False, error=f"refused: {exc}", retryable=False)
        except httpx.HTTPError as exc:
            # the exception text may quote the URL, which is a credential: name the type
            return DeliveryResult(False, error=f"{type(exc).__name__} sending to the robot")
        except ValueError as exc:
            return DeliveryResult(False, error=f"cannot build the request: {exc}", retryable=False)
        return interpret(response, self.codes, now)

    def close(self) -> None:
        self.client.close()
