"""The daily report as an XLSX workbook (openpyxl), sheets named in Chinese.

Ids and codes are text cells (format `@`), so a spreadsheet never turns `0012` into 12
or a credit code into 9.1E+17. Every string goes through the CSV export's sanitiser
(`csv_cell`): openpyxl would otherwise store a value starting with `=` as a formula.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from services.api.pagination import csv_cell
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

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
RATIO_FORMAT = "0.00%"
# Excel refuses these in sheet names, and allows 31 characters
_BAD_SHEET_CHARS = str.maketrans({c: "_" for c in "[]:*?/\\"})


def safe_text(value: Any) -> Any:
    """A string as the CSV export writes it (a leading quote before a formula start),
    without the control characters XML cannot hold (a site or enterprise name is
    whatever somebody typed, and openpyxl would refuse the whole workbook);
    anything else unchanged."""
    if not isinstance(value, str):
        return value
    return csv_cell(ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))


def sheet_title(name: str) -> str:
    return name.translate(_BAD_SHEET_CHARS)[:31]


def _put(sheet: Worksheet, row: int, col: int, value: Any, kind: str) -> None:
    if kind == "text" and value is not None:
        value = str(value)
    cell = sheet.cell(row=row, column=col, value=safe_text(value))
    if kind == "text":
        cell.number_format = "@"
    elif kind == "ratio":
        cell.number_format = RATIO_FORMAT
    elif kind == "time":
        cell.number_format = TIME_FORMAT


def _table(
    sheet: Worksheet,
    headings: Sequence[str],
    kinds: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    for col, heading in enumerate(headings, start=1):
        sheet.cell(row=1, column=col, value=safe_text(heading)).font = Font(bold=True)
        sheet.column_dimensions[sheet.cell(row=1, column=col).column_letter].width = max(
            10, min(40, 2 * len(heading) + 4)
        )
    for r, values in enumerate(rows, start=2):
        for col, (value, kind) in enumerate(zip(values, kinds, strict=True), start=1):
            _put(sheet, r, col, value, kind)
    sheet.freeze_panes = "A2"


def _section_sheet(book: Workbook, section: Section, language: Language, timezone: str) -> None:
    sheet = book.create_sheet(sheet_title(label(f"sheet.{section.key}", language)))
    rows = [section_row(row, timezone) for row in section.rows]
    kinds = [
        "text"
        if c in section.text_columns
        else "time"
        if any(isinstance(row[k], datetime) for row in rows)
        else "value"
        for k, c in enumerate(section.columns)
    ]
    _table(sheet, [label(c, language) for c in section.columns], kinds, rows)


def workbook(report: DailyReport, language: Language = "zh-CN") -> Workbook:
    book = Workbook()
    overview = book.active
    assert overview is not None
    overview.title = sheet_title(label("sheet.overview", language))
    overview.cell(row=1, column=1, value=label("title", language)).font = Font(bold=True)
    for r, (heading, value, kind) in enumerate(overview_rows(report, language), start=2):
        overview.cell(row=r, column=1, value=safe_text(heading)).font = Font(bold=True)
        _put(overview, r, 2, value, kind)
    overview.column_dimensions["A"].width = 28
    overview.column_dimensions["B"].width = 48

    sites = book.create_sheet(sheet_title(label("sheet.sites", language)))
    _table(
        sites,
        [label(k, language) for k, _ in SCOPE_COLUMNS],
        [kind for _, kind in SCOPE_COLUMNS],
        [scope_row(s, language) for s in (report.community, *report.sites)],
    )
    alert_kinds = [kind for _, kind in ALERT_COLUMNS]
    alert_headings = [label(k, language) for k, _ in ALERT_COLUMNS]
    for key, lines in (
        ("sheet.fevers", report.fever_cases),
        ("sheet.events", tuple(a for a in report.alerts if a.type != "fever")),
    ):
        sheet = book.create_sheet(sheet_title(label(key, language)))
        _table(sheet, alert_headings, alert_kinds, [alert_row(a, report.timezone) for a in lines])
    for section in report.sections:
        _section_sheet(book, section, language, report.timezone)
    return book


def xlsx_bytes(report: DailyReport, language: Language = "zh-CN") -> bytes:
    buffer = io.BytesIO()
    workbook(report, language).save(buffer)
    return buffer.getvalue()
