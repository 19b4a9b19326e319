"""The daily report as a printable HTML page: server-rendered, every value escaped, no
script at all, one stylesheet of the dashboard's origin (css/report.css, with print
rules: A4 landscape, tables that break between rows, headings repeated)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from services.api.report_labels import (
    ALERT_COLUMNS,
    SCOPE_COLUMNS,
    Language,
    alert_row,
    label,
    overview_rows,
    scope_row,
    section_row,
)
from services.core.report_model import DailyReport, Section


def cell_text(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "ratio" and isinstance(value, int | float):
        return f"{value * 100:.2f} %"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(
    caption: str, headings: Sequence[str], kinds: Sequence[str], rows: Iterable[Sequence[Any]]
) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headings)
    body = []
    for values in rows:
        cells = "".join(
            f'<td class="{escape(kind)}">{escape(cell_text(v, kind))}</td>'
            for v, kind in zip(values, kinds, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headings)}" class="empty">—</td></tr>')
    return (
        f"<section><h2>{escape(caption)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _section(section: Section, language: Language, timezone: str) -> str:
    kinds = ["text" if c in section.text_columns else "value" for c in section.columns]
    return _table(
        label(f"sheet.{section.key}", language),
        [label(c, language) for c in section.columns],
        kinds,
        [section_row(row, timezone) for row in section.rows],
    )


def render_html(report: DailyReport, stylesheet: str, language: Language = "zh-CN") -> str:
    """The whole document; `stylesheet` is the absolute URL of css/report.css (absolute
    so the page also works when the dashboard opens it from a downloaded copy)."""
    title = f"{label('title', language)} {report.day.isoformat()}"
    overview = "".join(
        f'<tr><th scope="row">{escape(h)}</th>'
        f'<td class="{escape(kind)}">{escape(cell_text(v, kind))}</td></tr>'
        for h, v, kind in overview_rows(report, language)
    )
    alert_kinds = [kind for _, kind in ALERT_COLUMNS]
    alert_headings = [label(k, language) for k, _ in ALERT_COLUMNS]
    events = tuple(a for a in report.alerts if a.type != "fever")
    parts = [
        "<!doctype html>",
        f'<html lang="{escape(language)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f'<link rel="stylesheet" href="{escape(stylesheet)}">',
        '</head><body class="report">',
        f"<header><h1>{escape(title)}</h1></header>",
        f"<section><h2>{escape(label('sheet.overview', language))}</h2>",
        f'<table class="overview"><tbody>{overview}</tbody></table></section>',
        _table(
            label("sheet.sites", language),
            [label(k, language) for k, _ in SCOPE_COLUMNS],
            [kind for _, kind in SCOPE_COLUMNS],
            [scope_row(s, language) for s in (report.community, *report.sites)],
        ),
        _table(
            label("sheet.fevers", language),
            alert_headings,
            alert_kinds,
            [alert_row(a, report.timezone) for a in report.fever_cases],
        ),
        _table(
            label("sheet.events", language),
            alert_headings,
            alert_kinds,
            [alert_row(a, report.timezone) for a in events],
        ),
        *(_section(section, language, report.timezone) for section in report.sections),
        "</body></html>",
    ]
    return "\n".join(parts)
