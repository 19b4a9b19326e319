"""Robot messages as pure functions: what they say, what they never show, and that
each stays within its robot's size limit with the dashboard link kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.alerts.robots import dingtalk, feishu, render, wecom
from services.alerts.robots.common import RobotRoute, mask_url
from services.alerts.robots.messages import (
    Context,
    Event,
    card,
    plain,
    probe_card,
    summary_card,
)

CTX = Context("https://monitor.example.cn")


def event(name: str = "opened", **alert: Any) -> Event:
    data = {
        "id": 17,
        "type": "fever",
        "severity": "critical",
        "checkpoint_id": "cp-001",
        "site_id": "res-01",
        "subject": "h:3f2a9c01",
        "details": {"temp_c": 38.4, "id_masked": "4403**********123X", "person": "3f2a9c01"},
        "escalation_level": 0,
        **alert,
    }
    payload = {"type": f"alert.{name}", "timestamp": "2026-03-01T08:00:01+00:00", "data": data}
    return Event.from_payload(json.dumps(payload))


def route(kind: str, language: str = "zh-CN", mentions: tuple[str, ...] = ()) -> RobotRoute:
    return RobotRoute(1, "g", kind, "http://127.0.0.1/x", "", language, mentions)


def test_english_card_names_the_rule_severity_and_local_time() -> None:
    text = json.loads(render(card(event(), CTX, "en"), route("dingtalk", "en")))["markdown"]
    assert text["title"] == "New alert · Critical · Fever · cp-001"
    for expected in ("Fever 38.4 °C", "2026-03-01 16:00:01 (Asia/Shanghai)", "ID ending 123X"):
        assert expected in text["text"]
    assert "https://monitor.example.cn/#alert/17" in text["text"]


def test_a_plate_shows_its_last_four_characters_only() -> None:
    plated = event(
        type="unregistered_entry", severity="major", subject="plate:粤B12345", details={}
    )
    lines = [line.text for line in card(plated, CTX, "zh-CN").lines]
    assert "车牌尾号 2345" in lines and not any("粤B1" in line for line in lines)


@pytest.mark.parametrize(
    "hostile",
    ["<@all>", "[click](http://evil.example)", "@13800000000", "# heading\n> quote", "<at id=all>"],
)
def test_people_typed_text_cannot_become_markup_or_mentions(hostile: str) -> None:
    made = plain(hostile)
    assert not set(made) & set("<>[]()@#\n*_`|")


@pytest.mark.parametrize(
    ("kind", "limit"), [("wecom", 4096), ("dingtalk", 4096), ("feishu", 20 * 1024 - 200)]
)
def test_a_long_message_is_cut_to_the_robot_limit_and_keeps_the_link(kind: str, limit: int) -> None:
    many = [event(id=i) for i in range(300)]
    message = render(summary_card(many, CTX, "zh-CN"), route(kind))
    body = json.loads(message)
    if kind == "feishu":
        assert len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()) <= limit
        post = body["content"]["post"]["zh_cn"]
        assert post["content"][-1][0]["href"] == "https://monitor.example.cn/#alerts"
        assert "截断" in json.dumps(post, ensure_ascii=False)
        return
    content = body["markdown"]["content"] if kind == "wecom" else body["markdown"]["text"]
    assert len(content.encode()) <= limit
    assert content.endswith("(https://monitor.example.cn/#alerts)") and "截断" in content
    assert "300 条告警事件" in content


def test_wecom_mentions_by_phone_in_a_text_message_within_2048_bytes() -> None:
    noisy = event(note="备注" * 500)
    body = wecom.build(card(noisy, CTX, "zh-CN"), route("wecom", mentions=("13800000001",)))
    assert body["msgtype"] == "text"
    assert body["text"]["mentioned_mobile_list"] == ["13800000001"]
    assert len(body["text"]["content"].encode()) <= 2048


def test_closing_news_does_not_wake_anybody() -> None:
    resolved = event("resolved", outcome="recheck_normal", resolved_by="system")
    message = card(resolved, CTX, "zh-CN")
    assert not message.mention and any(line.text == "复测体温正常" for line in message.lines)
    body = dingtalk.build(message, route("dingtalk", mentions=("13800000001",)))
    assert body["at"]["atMobiles"] == [] and "@138" not in body["markdown"]["text"]
    assert feishu.build(message, route("feishu", mentions=("ou_1",)))["content"]["post"]


def test_signatures_follow_the_documented_recipes() -> None:
    # DingTalk: base64(HMAC-SHA256(key=secret, "ts\nsecret")); Feishu: key="ts\nsecret", msg=""
    assert dingtalk.sign("SECabc", 1600000000000) != dingtalk.sign("SECabd", 1600000000000)
    signed = dingtalk.signed_url("http://127.0.0.1/robot/send?access_token=t", "SECabc", 1.6e9)
    assert "&timestamp=1600000000000&sign=" in signed and "+" not in signed.split("sign=")[1]
    assert feishu.sign("abc", 1600000000) != feishu.sign("abc", 1600000001)


def test_a_robot_answer_reaches_the_log_as_one_printable_line() -> None:
    codes = dingtalk.CODES
    code, message = codes.read(
        {"errcode": 310000, "errmsg": "sign not match\nFAKE LOG LINE\x1b[31m"}
    )
    assert code == 310000 and "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…0ec2",
        ),
        (
            "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd",
            "https://open.feishu.cn/open-apis/bot/v2/hook/…86fd",
        ),
    ],
)
def test_urls_are_shown_without_their_tokens(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu"])
@pytest.mark.parametrize(("language", "keyword"), [("zh-CN", "告警"), ("en", "alert")])
def test_every_message_carries_the_keyword_a_robot_can_require(
    kind: str, language: str, keyword: str
) -> None:
    events = [
        event("opened"),
        event("escalated", escalation_level=1),
        event("acknowledged", acknowledged_by="duty-wang"),
        event("resolved", outcome="recheck_normal"),
    ]
    cards = [card(e, CTX, language) for e in events] + [summary_card(events, CTX, language)]
    cards.append(probe_card("North gate", CTX, language))
    for made in cards:
        assert keyword in render(made, route(kind, language)).decode()
