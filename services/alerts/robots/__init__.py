"""Group robots: WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书).

One module per robot (its message format, signature and codes), `messages` for what
every message says, `common` for what they share, `dispatch` for rate-limited delivery
from the outbox (a burst is folded into summary messages), `probe` for "send a test
message".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from services.alerts.egress import STRICT, EgressPolicy
from services.alerts.robots import dingtalk, feishu, wecom
from services.alerts.robots.common import ROBOT_KINDS, RobotNotifier, RobotRoute
from services.alerts.robots.messages import Card

BUILDERS: dict[str, Callable[[Card, RobotRoute], dict[str, Any]]] = {
    "wecom": wecom.build,
    "dingtalk": dingtalk.build,
    "feishu": feishu.build,
}
NOTIFIER_TYPES: dict[str, type[RobotNotifier]] = {
    "wecom": wecom.WeComNotifier,
    "dingtalk": dingtalk.DingTalkNotifier,
    "feishu": feishu.FeishuNotifier,
}


def render(card: Card, route: RobotRoute) -> bytes:
    """The robot's JSON for `card` (unsigned: the notifier signs when sending)."""
    return json.dumps(BUILDERS[route.kind](card, route), ensure_ascii=False).encode()


def make_notifiers(
    timeout_s: float = 5.0,
    wall_clock: Callable[[], float] = time.time,
    egress: EgressPolicy = STRICT,
) -> dict[str, RobotNotifier]:
    return {
        kind: NOTIFIER_TYPES[kind](timeout_s=timeout_s, wall_clock=wall_clock, egress=egress)
        for kind in ROBOT_KINDS
    }
