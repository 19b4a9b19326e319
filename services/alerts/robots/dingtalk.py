"""DingTalk (钉钉) custom group robot.

POST `https://oapi.dingtalk.com/robot/send?access_token=...` a `markdown` message. With
加签 (signing) on, every request carries `timestamp` (ms) and `sign` query parameters:
sign = urlencode(base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}"))). The robot
answers `{"errcode": 0, "errmsg": "ok"}`; 130101 "send too fast" means more than 20
messages in a minute, after which it refuses for 10 minutes. Mentions: `at.atMobiles`,
and each `@phone` must also appear in the text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote_plus

from services.alerts.robots.common import Codes, RobotNotifier, RobotRoute
from services.alerts.robots.messages import Card, fit

CODES = Codes("dingtalk", ("errcode",), ("errmsg",), {130101: 600.0})
# DingTalk documents no markdown size we could find; we keep to WeCom's 4,096 bytes
TEXT_LIMIT_BYTES = 4096


def sign(secret: str, timestamp_ms: int) -> str:
    """The base64 signature (before URL-encoding)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, now: float) -> str:
    timestamp = int(now * 1000)
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp}&sign={quote_plus(sign(secret, timestamp))}"


def build(card: Card, route: RobotRoute) -> dict[str, Any]:
    parts = [f"#### {card.title}"]
    for line in card.lines:
        text = f"[{line.text}]({line.href})" if line.href else line.text
        parts.append(f"- **{line.label}**{card.colon}{text}" if line.label else f"- {text}")
    mobiles = list(route.mentions) if card.mention else []
    tail = f"[{card.link_text}]({card.link})"
    if mobiles:
        tail += "\n" + " ".join(f"@{m}" for m in mobiles)  # the robot requires them in text
    text = fit(parts, tail, TEXT_LIMIT_BYTES, card.truncated_text)
    return {
        "msgtype": "markdown",
        "markdown": {"title": card.title, "text": text},
        "at": {"atMobiles": mobiles, "isAtAll": False},
    }


class DingTalkNotifier(RobotNotifier):
    name = "dingtalk"
    codes = CODES

    def signed(
        self, url: str, secret: str, body: dict[str, Any], now: float
    ) -> tuple[str, dict[str, Any]]:
        return (signed_url(url, secret, now) if secret else url), body
