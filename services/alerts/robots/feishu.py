"""Feishu (飞书) custom group robot.

POST `https://open.feishu.cn/open-apis/bot/v2/hook/<token>` a rich-text `post` message
(its text elements are literal, so nothing in them is markup). With 签名校验 on, the
body carries `timestamp` (seconds, within an hour of Feishu's clock) and `sign` =
base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b"")). The request body is at most
20 KB. The robot answers `{"code": 0, "msg": "success"}` (older robots also
`StatusCode`); 11232 "frequency limited" (100 a minute, 5 a second) is retried, 19021
(signature or timestamp), 19024 (keyword), 19022 (IP) and 9499 (bad request) are not.
Mentions are Feishu user ids (`ou_...`) or `all`: the robot cannot @ a phone number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from services.alerts.robots.common import Codes, RobotNotifier, RobotRoute
from services.alerts.robots.messages import Card, Line

CODES = Codes("feishu", ("code", "StatusCode"), ("msg", "StatusMessage"), {11232: 60.0})
BODY_LIMIT_BYTES = 20 * 1024
SIGNATURE_ROOM_BYTES = 200  # timestamp and sign, added when sending


def sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def _paragraph(line: Line, colon: str) -> list[dict[str, Any]]:
    label = [{"tag": "text", "text": f"{line.label}{colon}"}] if line.label else []
    if line.href:
        return [*label, {"tag": "a", "text": line.text, "href": line.href}]
    return [*label, {"tag": "text", "text": line.text}]


def build(card: Card, route: RobotRoute) -> dict[str, Any]:
    language = "zh_cn" if route.language == "zh-CN" else "en_us"
    tail: list[list[dict[str, Any]]] = [[{"tag": "a", "text": card.link_text, "href": card.link}]]
    if card.mention and route.mentions:
        tail.append([{"tag": "at", "user_id": user} for user in route.mentions])
    lines = [_paragraph(line, card.colon) for line in card.lines]

    def body(paragraphs: list[list[dict[str, Any]]]) -> dict[str, Any]:
        post = {"title": card.title, "content": [*paragraphs, *tail]}
        return {"msg_type": "post", "content": {"post": {language: post}}}

    limit = BODY_LIMIT_BYTES - SIGNATURE_ROOM_BYTES
    if _size(body(lines)) <= limit:
        return body(lines)
    marker = [{"tag": "text", "text": f"… ({card.truncated_text})"}]
    while lines and _size(body([*lines, marker])) > limit:
        lines.pop()
    return body([*lines, marker])


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


class FeishuNotifier(RobotNotifier):
    name = "feishu"
    codes = CODES

    def signed(
        self, url: str, secret: str, body: dict[str, Any], now: float
    ) -> tuple[str, dict[str, Any]]:
        if not secret:
            return url, body
        timestamp = int(now)
        return url, {"timestamp": str(timestamp), "sign": sign(secret, timestamp), **body}
