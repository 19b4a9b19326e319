"""Headings of the daily report in zh-CN (first) and English, shared by the XLSX and
the printable page; and the rows both render, so the two always show the same cells."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from services.core.report_model import (
    EXTRA_FIGURES,
    REPORTED_TYPES,
    AlertLine,
    DailyReport,
    ScopeReport,
)

Language = Literal["zh-CN", "en"]

LABELS: dict[str, tuple[str, str]] = {
    "title": ("社区防控日报", "Daily report"),
    "date": ("日期", "Date"),
    "timezone": ("时区", "Time zone"),
    "window": ("统计时段 (UTC)", "Window (UTC)"),
    "generated_at": ("生成时间", "Generated at"),
    "scope": ("范围", "Scope"),
    "community": ("全社区", "Whole community"),
    "site_id": ("小区编号", "Site id"),
    "site": ("小区", "Site"),
    "checkpoints": ("检测点数", "Checkpoints"),
    "passages": ("通行人次", "Passages"),
    "persons": ("行人", "Persons"),
    "vehicles": ("车辆", "Vehicles"),
    "passages_in": ("进", "In"),
    "passages_out": ("出", "Out"),
    "screened_persons": ("已测温", "Screened persons"),
    "temperature_coverage": ("测温覆盖率", "Temperature coverage"),
    "registered": ("已登记", "Registered"),
    "registration_coverage": ("登记覆盖率", "Registration coverage"),
    "unregistered": ("未登记通行", "Unregistered passages"),
    "quarantine_breaches": ("居家隔离人员通行", "Passages by quarantined people"),
    "readings": ("体温读数", "Readings"),
    "fevers": ("发热读数", "Fever readings"),
    "staffing_coverage": ("值守覆盖率", "Staffing coverage"),
    "unstaffed_minutes": ("缺岗分钟", "Unstaffed minutes"),
    "device_uptime": ("设备在线率", "Device uptime"),
    "offline_minutes": ("设备离线分钟", "Offline minutes"),
    "alerts_opened": ("新告警", "Alerts opened"),
    "fevers_open": ("未处置发热", "Fever cases open"),
    "alert.fever": ("发热告警", "Fever alerts"),
    "alert.unregistered_entry": ("未登记进入", "Unregistered entries"),
    "alert.quarantine_breach": ("隔离违规", "Quarantine breaches"),
    "alert.staffing_gap": ("值守缺岗", "Staffing gaps"),
    "alert.device_offline": ("设备离线", "Device outages"),
    "alert.unscreened_passage": ("未测温通行", "Unscreened passages"),
    "alert.sensor_fault": ("测温设备故障", "Sensor faults"),
    "alert.clock_skew": ("设备时钟偏差", "Clock skew"),
    "alert.no_show": ("排班未到岗", "No-shows"),
    "alert.left_post": ("提前离岗", "Left post"),
    "alert.screening_suspect": ("疑似走过场测温", "Screening suspect"),
    "id": ("告警编号", "Alert id"),
    "type": ("类型", "Type"),
    "severity": ("级别", "Severity"),
    "checkpoint_id": ("检测点编号", "Checkpoint id"),
    "opened_at": ("发生时间", "Opened at"),
    "status": ("状态", "Status"),
    "outcome": ("处置结果", "Outcome"),
    "disposition": ("处置去向", "Disposition"),
    "resolved_by": ("处置人", "Resolved by"),
    "resolved_at": ("处置时间", "Resolved at"),
    "summary": ("说明", "Summary"),
    "sheet.overview": ("概况", "Overview"),
    "sheet.sites": ("各小区", "Sites"),
    "sheet.fevers": ("发热病例", "Fever cases"),
    "sheet.events": ("异常事件", "Events"),
    # supervision (issue 16) and rosters (issue 17)
    "inspections": ("督查次数", "Inspections"),
    "inspections_passed": ("督查合格", "Inspections passed"),
    "findings": ("新发现问题", "Findings"),
    "open_rectifications": ("待整改", "Open rectifications"),
    "overdue_rectifications": ("逾期未整改", "Overdue rectifications"),
    "enterprises_resumed": ("当日复工企业", "Enterprises resumed"),
    "checked_same_day": ("当日核查", "Checked the same day"),
    "hours_served": ("值守时长(小时)", "Hours served"),
    "required_minutes": ("按要求应值守分钟", "Minutes a requirement applied"),
    "met_minutes": ("达到值守要求分钟", "Minutes the requirement was met"),
    "staffing_by_requirement": ("按要求值守达标率", "Staffing by requirement"),
    "sheet.inspections": ("督查记录", "Inspections"),
    "sheet.findings": ("问题整改", "Findings"),
    "sheet.enterprises": ("复工企业", "Enterprises"),
    "sheet.hours": ("值守时长", "Hours served"),
    "sheet.hours_by_role": ("各岗位时长", "Hours by role"),
    "sheet.fever_dispositions": ("发热处置", "Fever dispositions"),
    "kind": ("类别", "Kind"),
    "team_id": ("督查组", "Team"),
    "enterprise_id": ("企业编号", "Enterprise id"),
    "template": ("清单", "Checklist"),
    "inspected_at": ("督查时间", "Inspected at"),
    "passed": ("合格", "Passed"),
    "signer_name": ("责任人签字", "Signed by"),
    "inspection_id": ("督查编号", "Inspection id"),
    "item_code": ("检查项", "Item"),
    "deadline": ("整改期限", "Deadline"),
    "reason": ("原因", "Reason"),
    "name": ("名称", "Name"),
    "credit_code": ("统一社会信用代码", "Unified social credit code"),
    "staff_id": ("工号", "Staff id"),
    "duty_role": ("岗位", "Role"),
    "hours": ("小时", "Hours"),
    "fever_at": ("发热时间", "Fever at"),
    "temp_c": ("体温", "Temperature"),
    "recheck_temp_c": ("复测体温", "Re-check temperature"),
    "decided_by": ("决定人", "Decided by"),
    "decided_at": ("决定时间", "Decided at"),
    "minutes_to_disposition": ("处置用时(分钟)", "Minutes to disposition"),
}


def label(key: str, language: Language = "zh-CN") -> str:
    """The heading of `key`; an unknown one (an alert type added later) shows its name."""
    fallback = key.removeprefix("alert.")
    zh, en = LABELS.get(key, (fallback, fallback))
    return zh if language == "zh-CN" else en


# --- the rows ----------------------------------------------------------------------------
# (key, kind): kind "text" for ids and codes, "ratio" for coverage, "number" otherwise
Column = tuple[str, str]

SCOPE_COLUMNS: tuple[Column, ...] = (
    ("site_id", "text"),
    ("site", "text"),
    ("checkpoints", "number"),
    ("passages", "number"),
    ("persons", "number"),
    ("vehicles", "number"),
    ("passages_in", "number"),
    ("passages_out", "number"),
    ("screened_persons", "number"),
    ("temperature_coverage", "ratio"),
    ("registered", "number"),
    ("registration_coverage", "ratio"),
    ("unregistered", "number"),
    ("quarantine_breaches", "number"),
    ("readings", "number"),
    ("fevers", "number"),
    ("staffing_coverage", "ratio"),
    ("unstaffed_minutes", "number"),
    ("device_uptime", "ratio"),
    ("offline_minutes", "number"),
    ("alerts_opened", "number"),
    *((f"alert.{name}", "number") for name in REPORTED_TYPES),
    ("fevers_open", "number"),
    *((name, "number") for name in EXTRA_FIGURES),
    ("staffing_by_requirement", "ratio"),
)

ALERT_COLUMNS: tuple[Column, ...] = (
    ("id", "text"),
    ("type", "text"),
    ("severity", "text"),
    ("site_id", "text"),
    ("checkpoint_id", "text"),
    ("opened_at", "time"),
    ("status", "text"),
    ("outcome", "text"),
    ("disposition", "text"),
    ("resolved_by", "text"),
    ("resolved_at", "time"),
    ("summary", "text"),
)


def scope_row(scope: ScopeReport, language: Language = "zh-CN") -> tuple[Any, ...]:
    cov = scope.coverage
    name = scope.name_zh or scope.name if language == "zh-CN" else scope.name
    values: dict[str, Any] = {
        "site_id": scope.site_id or "",
        "site": label("community", language) if scope.site_id is None else name,
        "checkpoints": scope.checkpoints,
        "unstaffed_minutes": cov.unstaffed_minutes,
        "offline_minutes": cov.offline_minutes,
        "fevers_open": scope.fevers_open,
        **{name: scope.figure(name) for name in EXTRA_FIGURES},
        "staffing_by_requirement": scope.staffing_by_requirement,
        **{f"alert.{name}": count for name, count in scope.alerts},
    }
    return tuple(
        values[key] if key in values else getattr(cov, key) for key, _kind in SCOPE_COLUMNS
    )


def local_time(at: datetime | None, timezone: str) -> datetime | None:
    """A naive local time (spreadsheets keep no zone); None stays None."""
    return None if at is None else at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def section_row(values: tuple[Any, ...], timezone: str) -> tuple[Any, ...]:
    """A section's row with its times local and naive, as the alert rows have them."""
    return tuple(local_time(v, timezone) if isinstance(v, datetime) else v for v in values)


def alert_row(line: AlertLine, timezone: str) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "id": str(line.id),
        "opened_at": local_time(line.opened_at, timezone),
        "resolved_at": local_time(line.resolved_at, timezone),
    }
    return tuple(
        values[key] if key in values else getattr(line, key) for key, _kind in ALERT_COLUMNS
    )


def overview_rows(report: DailyReport, language: Language = "zh-CN") -> list[tuple[str, Any, str]]:
    """(heading, value, kind) of the overview: the day, then the community's figures."""
    keys = [k for k, _ in SCOPE_COLUMNS]
    row = dict(zip(keys, scope_row(report.community, language), strict=True))
    window = f"{report.start.isoformat()} – {report.end.isoformat()}"
    head: list[tuple[str, Any, str]] = [
        (label("date", language), report.day.isoformat(), "text"),
        (label("timezone", language), report.timezone, "text"),
        (label("window", language), window, "text"),
        (
            label("generated_at", language),
            local_time(report.generated_at, report.timezone),
            "time",
        ),
    ]
    skip = {"site_id", "site"}
    return head + [(label(k, language), row[k], kind) for k, kind in SCOPE_COLUMNS if k not in skip]
