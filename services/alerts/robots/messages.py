"""What a robot message says, in Chinese or English: pure functions over the outbox
payload (the Standard Webhooks JSON of an alert event), no I/O.

A `Card` is the message independent of the robot: a title, lines, a link to the alert
in the dashboard, and whether it @-mentions the duty numbers. Each robot module turns
a card into its own format and fits it into its length limit (`fit`).

Third-party robots see the subject only as its last 4 characters (of the masked ID
number or the plate); person hashes, message ids and free details never leave us.
Everything typed by people or devices (notes, outcomes, names, ids) goes through
`plain`, so it cannot add markdown links, headings or @-mentions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

ZH, EN = "zh-CN", "en"
LANGUAGES = (ZH, EN)

TYPES = {
    "fever": ("发热", "Fever"),
    "quarantine_breach": ("居家隔离人员通行", "Quarantine breach"),
    "unregistered_entry": ("未登记通行", "Unregistered entry"),
    "staffing_gap": ("值守缺岗", "Staffing gap"),
    "device_offline": ("设备离线", "Device offline"),
    "unscreened_passage": ("通行未测温", "Unscreened passage"),
    "sensor_fault": ("测温设备故障", "Sensor fault"),
    "clock_skew": ("设备时钟偏差", "Clock skew"),
    "no_show": ("排班人员未到岗", "No-show"),
    "left_post": ("值守人员提前离岗", "Left post"),
    "screening_suspect": ("测温疑似走过场", "Screening suspect"),
    "rectification_overdue": ("整改逾期", "Rectification overdue"),
    "enterprise_unchecked": ("复工企业当天未核查", "Resumed enterprise not checked"),
}
SEVERITIES = {
    "critical": ("紧急", "Critical"),
    "major": ("重要", "Major"),
    "warning": ("提示", "Warning"),
}
EVENTS = {
    "opened": ("新告警", "New alert"),
    "escalated": ("告警升级", "Escalated"),
    "acknowledged": ("已确认", "Acknowledged"),
    "resolved": ("已解除", "Resolved"),
    "test": ("测试消息", "Test message"),
}
OUTCOMES = {
    "recheck_normal": ("复测体温正常", "re-check normal"),
    "staff_on_duty": ("值守人员已到岗", "staff back on duty"),
    "device_online": ("设备恢复在线", "device back online"),
    "screened_late": ("已补测体温", "screened late"),
    "readings_plausible": ("读数恢复正常", "readings plausible again"),
    "clock_ok": ("设备时钟已恢复", "clock back within bounds"),
    "rectified": ("复查整改到位", "rectified and re-inspected"),
    "checked": ("已完成复工核查", "checked on site"),
}
LABELS = {
    "checkpoint": ("检查点", "Checkpoint"),
    "site": ("站点", "Site"),
    "rule": ("规则", "Rule"),
    "severity": ("级别", "Severity"),
    "time": ("时间", "Time"),
    "subject": ("对象", "Subject"),
    "acknowledged_by": ("确认人", "Acknowledged by"),
    "resolved_by": ("处理人", "Resolved by"),
    "outcome": ("处理结果", "Outcome"),
    "note": ("备注", "Note"),
    "escalation": ("升级", "Escalation"),
    # "告警" / "alert" in every message: a robot's keyword (自定义关键词) can be set to it
    "open": ("在看板中查看告警", "Open the alert in the dashboard"),
    "open_all": ("在看板中查看全部告警", "See all alerts in the dashboard"),
    "truncated": ("内容过长已截断，详情见看板", "Shortened: the rest is in the dashboard"),
}
MENTION_EVENTS = ("opened", "escalated")  # who is woken up; closing news is not urgent
NOTE_MAX_CHARS = 300
# Markdown and mention syntax of the three robots, replaced by full-width look-alikes
_PLAIN = str.maketrans(
    {
        "<": "＜",
        ">": "＞",
        "[": "［",
        "]": "］",
        "(": "（",
        ")": "）",
        "*": "＊",
        "_": "＿",
        "#": "＃",
        "`": "｀",
        "@": "＠",
        "|": "｜",
        "\\": "＼",
        "~": "～",
    }
)


def tag(text: str, language: str) -> str:
    """An event's name at the head of a title: 【新告警】 / New alert ·"""
    return f"【{text}】" if language == ZH else f"{text} · "


def colon(language: str) -> str:
    return "：" if language == ZH else ": "


def say(table: dict[str, tuple[str, str]], key: str, language: str) -> str:
    pair = table.get(key)
    if pair is None:
        return plain(key)
    return pair[0] if language == ZH else pair[1]


def plain(value: Any, limit: int = 200) -> str:
    """Text from people or devices, made inert for every robot's markdown."""
    text = " ".join(str(value).split())  # no newlines: no headings, quotes or lists
    text = "".join(ch for ch in text if ch.isprintable())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(_PLAIN)


@dataclass(frozen=True, slots=True)
class Line:
    label: str | None
    text: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    title: str
    lines: tuple[Line, ...]
    link: str
    link_text: str
    severity: str
    mention: bool = False
    covers: int = 1  # alert events this message stands for
    truncated_text: str = ""
    colon: str = "："  # between a label and its value: full-width in Chinese


@dataclass(frozen=True, slots=True)
class Context:
    """What every message needs besides the event: where the dashboard is, the time zone."""

    dashboard_url: str
    timezone: str = "Asia/Shanghai"

    def alert_link(self, alert_id: Any) -> str:
        return f"{self.dashboard_url.rstrip('/')}/#alert/{int(alert_id)}"

    def alerts_link(self) -> str:
        return f"{self.dashboard_url.rstrip('/')}/#alerts"


@dataclass(frozen=True, slots=True)
class Event:
    """One alert event as the outbox holds it."""

    event: str
    at: datetime
    alert: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: str | bytes) -> Event:
        body = json.loads(payload)
        event = str(body.get("type", "")).removeprefix("alert.")
        return cls(event, datetime.fromisoformat(body["timestamp"]), dict(body.get("data") or {}))

    @property
    def critical(self) -> bool:
        return self.alert.get("severity") == "critical"


def local_time(at: datetime, ctx: Context, language: str, with_date: bool = True) -> str:
    local = at.astimezone(ZoneInfo(ctx.timezone))
    stamp = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    if not with_date:
        return stamp
    zone = "北京时间" if language == ZH and ctx.timezone == "Asia/Shanghai" else ctx.timezone
    return f"{stamp}（{zone}）" if language == ZH else f"{stamp} ({zone})"


def visible_subject(alert: dict[str, Any], language: str) -> str | None:
    """At most the last 4 characters of the masked ID number or of the plate."""
    details = alert.get("details") or {}
    masked = details.get("id_masked") if isinstance(details, dict) else None
    subject = str(alert.get("subject") or "")
    if masked:
        tail = plain(str(masked)[-4:])
        return f"证件尾号 {tail}" if language == ZH else f"ID ending {tail}"
    if subject.startswith("plate:") and len(subject) > 6:
        tail = plain(subject[6:][-4:])
        return f"车牌尾号 {tail}" if language == ZH else f"plate ending {tail}"
    return None


def rule_text(alert: dict[str, Any], language: str) -> str:
    name = say(TYPES, str(alert.get("type", "")), language)
    details = alert.get("details") or {}
    if not isinstance(details, dict):
        return name
    if alert.get("type") == "fever" and isinstance(details.get("temp_c"), int | float):
        return f"{name} {float(details['temp_c']):.1f} °C"
    if alert.get("type") == "unregistered_entry" and details.get("registration"):
        return (
            f"{name}（{plain(details['registration'], 40)}）"
            if language == ZH
            else (f"{name} ({plain(details['registration'], 40)})")
        )
    return name


def card(event: Event, ctx: Context, language: str) -> Card:
    """The message of one alert event."""
    alert = event.alert
    severity = str(alert.get("severity", "warning"))
    what = say(EVENTS, event.event, language)
    rule = say(TYPES, str(alert.get("type", "")), language)
    checkpoint = plain(alert.get("checkpoint_id", ""), 64)
    title = f"{tag(what, language)}{say(SEVERITIES, severity, language)} · {rule} · {checkpoint}"

    def label(key: str) -> str:
        return say(LABELS, key, language)

    lines = [
        Line(label("checkpoint"), checkpoint),
        Line(label("site"), plain(alert.get("site_id", ""), 64)),
        Line(label("rule"), rule_text(alert, language)),
        Line(label("severity"), say(SEVERITIES, severity, language)),
        Line(label("time"), local_time(event.at, ctx, language)),
    ]
    subject = visible_subject(alert, language)
    if subject:
        lines.append(Line(label("subject"), subject))
    if event.event == "escalated":
        level = int(alert.get("escalation_level") or 1)
        lines.append(
            Line(
                label("escalation"),
                f"第 {level} 次，未在规定时间内确认"
                if language == ZH
                else f"level {level}: not acknowledged in time",
            )
        )
    if event.event == "acknowledged" and alert.get("acknowledged_by"):
        lines.append(Line(label("acknowledged_by"), plain(alert["acknowledged_by"], 64)))
    if event.event == "resolved":
        if alert.get("outcome"):
            lines.append(Line(label("outcome"), say(OUTCOMES, str(alert["outcome"]), language)))
        if alert.get("resolved_by") and alert["resolved_by"] != "system":
            lines.append(Line(label("resolved_by"), plain(alert["resolved_by"], 64)))
    if event.event in ("resolved", "acknowledged") and alert.get("note"):
        lines.append(Line(label("note"), plain(alert["note"], NOTE_MAX_CHARS)))
    return Card(
        title=title,
        lines=tuple(lines),
        link=ctx.alert_link(alert.get("id", 0)),
        link_text=label("open"),
        severity=severity,
        mention=event.critical and event.event in MENTION_EVENTS,
        truncated_text=label("truncated"),
        colon=colon(language),
    )


def summary_card(events: list[Event], ctx: Context, language: str) -> Card:
    """One message standing for a burst of alert events; says how many it covers."""
    n = len(events)
    counts: dict[str, int] = {}
    for event in events:
        counts[event.event] = counts.get(event.event, 0) + 1
    tally = " · ".join(f"{say(EVENTS, name, language)} {count}" for name, count in counts.items())
    first, last = events[0].at, events[-1].at
    span = f"{local_time(first, ctx, language)} – {local_time(last, ctx, language, False)}"
    if language == ZH:
        title = f"【告警汇总】{n} 条告警事件"
        intro = (
            "告警集中出现，为不超过机器人限流（每分钟约 20 条），"
            f"以下 {n} 条告警事件合并为本条消息。"
        )
    else:
        title = f"Alert summary: {n} alert events"
        intro = (
            f"Many alerts at once: these {n} alert events are folded into this one message "
            "to stay within the robot's rate limit (about 20 a minute)."
        )
    lines = [Line(None, intro), Line(None, tally), Line(say(LABELS, "time", language), span)]
    for event in events:
        alert = event.alert
        item = " · ".join(
            [
                tag(say(EVENTS, event.event, language), language).removesuffix(" · ")
                + (" " if language != ZH else "")
                + say(SEVERITIES, str(alert.get("severity")), language),
                rule_text(alert, language),
                plain(alert.get("checkpoint_id", ""), 64),
                local_time(event.at, ctx, language, with_date=False),
            ]
        )
        lines.append(Line(None, item, ctx.alert_link(alert.get("id", 0))))
    worst = max((str(e.alert.get("severity")) for e in events), key=_rank)
    return Card(
        title=title,
        lines=tuple(lines),
        link=ctx.alerts_link(),
        link_text=say(LABELS, "open_all", language),
        severity=worst,
        mention=any(e.critical and e.event in MENTION_EVENTS for e in events),
        covers=n,
        truncated_text=say(LABELS, "truncated", language),
        colon=colon(language),
    )


def probe_card(route_name: str, ctx: Context, language: str) -> Card:
    """What "send a test message" sends."""
    if language == ZH:
        text = f"这是一条测试消息：告警路由「{plain(route_name, 100)}」已连通。"
    else:
        text = f"A test message: alert route '{plain(route_name, 100)}' reaches this group."
    return Card(
        title=f"{tag(say(EVENTS, 'test', language), language)}checkpoint-monitor",
        lines=(Line(None, text),),
        link=ctx.alerts_link(),
        link_text=say(LABELS, "open_all", language),
        severity="warning",
        colon=colon(language),
    )


def _rank(severity: str) -> int:
    return {"warning": 1, "major": 2, "critical": 3}.get(severity, 0)


def fit(parts: list[str], tail: str, limit_bytes: int, truncated: str) -> str:
    """Join `parts` (the title first) and the `tail` (the link) within `limit_bytes` of
    UTF-8: drop lines from the end while too long, then say so; the link always stays."""
    sep = "\n"

    def size(items: list[str]) -> int:
        return len(sep.join([*items, tail]).encode("utf-8"))

    if size(parts) <= limit_bytes:
        return sep.join([*parts, tail])
    kept = list(parts)
    marker = f"…（{truncated}）" if truncated and not truncated.isascii() else f"… ({truncated})"
    while len(kept) > 1 and size([*kept, marker]) > limit_bytes:
        kept.pop()
    text = sep.join([*kept, marker, tail])
    encoded = text.encode("utf-8")
    if len(encoded) > limit_bytes:  # even the title is too long: cut it
        text = encoded[: max(0, limit_bytes - len(tail.encode()) - 1)].decode("utf-8", "ignore")
        text = f"{text}{sep}{tail}"
    return text
