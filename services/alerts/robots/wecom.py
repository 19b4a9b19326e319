"""WeCom (企业微信) group robot.

POST `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`; no signing (the key in
the URL is the credential). `markdown` content is at most 4,096 bytes; markdown cannot
@-mention by phone number, so a critical alert with duty numbers goes as `text` (at most
2,048 bytes) with `mentioned_mobile_list`. The robot answers `{"errcode": 0, "errmsg":
"ok"}`; 45009 "api freq out of limit" means more than 20 messages in a minute.
"""

from __future__ import annotations

from typing import Any

from services.alerts.robots.common import Codes, RobotNotifier, RobotRoute
from services.alerts.robots.messages import Card, fit

CODES = Codes("wecom", ("errcode",), ("errmsg",), {45009: 60.0})
MARKDOWN_LIMIT_BYTES = 4096
TEXT_LIMIT_BYTES = 2048


def build(card: Card, route: RobotRoute) -> dict[str, Any]:
    if card.mention and route.mentions:
        parts = [card.title]
        for line in card.lines:
            text = f"{line.text} {line.href}" if line.href else line.text
            parts.append(f"{line.label}{card.colon}{text}" if line.label else text)
        content = fit(
            parts, f"{card.link_text}{card.colon}{card.link}", TEXT_LIMIT_BYTES, card.truncated_text
        )
        return {
            "msgtype": "text",
            "text": {"content": content, "mentioned_mobile_list": list(route.mentions)},
        }
    color = "warning" if card.severity == "critical" else "comment"
    parts = [f'### <font color="{color}">{card.title}</font>']
    for line in card.lines:
        text = f"[{line.text}]({line.href})" if line.href else line.text
        parts.append(f"> **{line.label}**{card.colon}{text}" if line.label else f"> {text}")
    content = fit(
        parts, f"[{card.link_text}]({card.link})", MARKDOWN_LIMIT_BYTES, card.truncated_text
    )
    return {"msgtype": "markdown", "markdown": {"content": content}}


class WeComNotifier(RobotNotifier):
    name = "wecom"
    codes = CODES
