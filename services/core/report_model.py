"""The daily report (日报) as plain data: frozen dataclasses, no database, no I/O.

A report covers one local day of the community's time zone, for the community and for
each site. Its coverage figures are those of `GET /api/v1/metrics/coverage` for the
same window (services/api/daily_report.py computes them with the same functions), its
alert lines those of `GET /api/v1/alerts` filtered by opening time. The renderers
(services/api/report_xlsx.py, report_html.py) and the announcement read only this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.core.models.alerts import AlertType

# the alert types the report counts, in its column order: every type there is (the
# "events" of the day; the headline names the five the article reports)
REPORTED_TYPES = tuple(t.value for t in AlertType)


# figures a site gets from supervision and rosters (services/api/report_sections.py)
EXTRA_FIGURES = (
    "inspections",
    "inspections_passed",
    "findings",
    "open_rectifications",
    "overdue_rectifications",
    "enterprises_resumed",
    "checked_same_day",
    "hours_served",
    "required_minutes",  # checkpoint-minutes a staffing requirement applied (issue 17)
    "met_minutes",  # of those, minutes the requirement was met (count and role mix)
)


class FutureDay(ValueError):
    """A report of a day that has not begun yet."""


def day_window(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of `day`, in UTC (23 or 25 hours long on a
    daylight-saving change)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def local_date(at: datetime, timezone: str) -> date:
    return at.astimezone(ZoneInfo(timezone)).date()


def check_day(day: date, now: datetime, timezone: str) -> date:
    """`day` itself, or FutureDay when it starts after today (local)."""
    today = local_date(now, timezone)
    if day > today:
        raise FutureDay(f"{day.isoformat()} is after today ({today.isoformat()}, {timezone})")
    return day


def previous_day(now: datetime, timezone: str) -> date:
    """The last whole local day before `now`: what the scheduled report covers."""
    return local_date(now, timezone) - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Coverage:
    """One scope's coverage figures for the day (docs/metrics.md)."""

    passages: int
    persons: int
    vehicles: int
    passages_in: int
    passages_out: int
    screened_persons: int
    registered: int
    unregistered: int
    quarantine_breaches: int
    readings: int
    fevers: int
    implausible_readings: int
    alerts_opened: int
    checkpoint_minutes: float
    staffed_minutes: float
    online_minutes: float
    temperature_coverage: float | None
    registration_coverage: float | None
    staffing_coverage: float | None
    device_uptime: float | None

    @classmethod
    def from_figures(cls, figures: Mapping[str, Any]) -> Coverage:
        """From the coverage API's figures (a `CoverageFigures` as a dict)."""
        passages = figures["passages"]
        return cls(
            passages=passages["total"],
            persons=passages["persons"],
            vehicles=passages["vehicles"],
            passages_in=passages["in"],
            passages_out=passages["out"],
            **{name: figures[name] for name in _PLAIN_FIGURES},
        )

    @property
    def unstaffed_minutes(self) -> float:
        """Checkpoint-minutes below the minimum staffing (staffing gaps)."""
        return round(self.checkpoint_minutes - self.staffed_minutes, 2)

    @property
    def offline_minutes(self) -> float:
        """Checkpoint-minutes with the device not online (device outages)."""
        return round(self.checkpoint_minutes - self.online_minutes, 2)


_PLAIN_FIGURES = (
    "screened_persons",
    "registered",
    "unregistered",
    "quarantine_breaches",
    "readings",
    "fevers",
    "implausible_readings",
    "alerts_opened",
    "checkpoint_minutes",
    "staffed_minutes",
    "online_minutes",
    "temperature_coverage",
    "registration_coverage",
    "staffing_coverage",
    "device_uptime",
)


@dataclass(frozen=True, slots=True)
class AlertLine:
    """An alert opened during the day, as the alerts API shows it (no personal details
    beyond its one-line summary)."""

    id: int
    type: str
    severity: str
    site_id: str
    checkpoint_id: str
    opened_at: datetime
    status: str
    outcome: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    summary: str
    disposition: str | None = None  # a fever case's disposition (issue 17), when recorded


@dataclass(frozen=True, slots=True)
class ScopeReport:
    """The community (site_id None) or one site."""

    site_id: str | None
    name: str
    name_zh: str | None
    checkpoints: int
    coverage: Coverage
    alerts: tuple[tuple[str, int], ...]  # opened alerts per type of REPORTED_TYPES
    fevers_resolved: int
    fevers_open: int
    figures: tuple[tuple[str, float], ...] = ()  # of EXTRA_FIGURES

    def alerts_of(self, alert_type: str) -> int:
        return dict(self.alerts).get(alert_type, 0)

    def figure(self, name: str) -> float:
        return dict(self.figures).get(name, 0)

    @property
    def staffing_by_requirement(self) -> float | None:
        """Minutes meeting the staffing requirement / minutes one applied (issue 17's
        staffing coverage; the coverage figures keep the "someone there" one)."""
        required = self.figure("required_minutes")
        return round(self.figure("met_minutes") / required, 6) if required else None


def tally(lines: Iterable[AlertLine]) -> tuple[tuple[str, int], ...]:
    counts = Counter(line.type for line in lines)
    return tuple((name, counts.get(name, 0)) for name in REPORTED_TYPES)


def scope_report(
    site_id: str | None,
    name: str,
    name_zh: str | None,
    checkpoints: int,
    figures: Mapping[str, Any],
    lines: Iterable[AlertLine],
    extra: Mapping[str, float] | None = None,
) -> ScopeReport:
    """One scope's section from its coverage figures and the day's alert lines (all of
    them: those of other sites are left out here)."""
    mine = [line for line in lines if site_id is None or line.site_id == site_id]
    fevers = [line for line in mine if line.type == "fever"]
    return ScopeReport(
        site_id=site_id,
        name=name,
        name_zh=name_zh,
        checkpoints=checkpoints,
        coverage=Coverage.from_figures(figures),
        alerts=tally(mine),
        fevers_resolved=sum(1 for line in fevers if line.status == "resolved"),
        fevers_open=sum(1 for line in fevers if line.status != "resolved"),
        figures=tuple((name, round((extra or {}).get(name, 0), 3)) for name in EXTRA_FIGURES),
    )


@dataclass(frozen=True, slots=True)
class Section:
    """A further table of the report (inspections, enterprises, hours served, ...):
    `key` names it, `columns` its headings (i18n keys), `rows` plain values."""

    key: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    text_columns: frozenset[str] = frozenset()  # codes and ids: written as text


@dataclass(frozen=True, slots=True)
class DailyReport:
    day: date
    timezone: str
    start: datetime  # UTC, hour-aligned as the coverage API aligns it
    end: datetime
    generated_at: datetime
    community: ScopeReport
    sites: tuple[ScopeReport, ...]
    alerts: tuple[AlertLine, ...]  # of REPORTED_TYPES, by opening time
    sections: tuple[Section, ...] = field(default=())

    @property
    def fever_cases(self) -> tuple[AlertLine, ...]:
        return tuple(line for line in self.alerts if line.type == "fever")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (dates as ISO strings)."""
        body: dict[str, Any] = _jsonable(asdict(self))
        for scope in (body["community"], *body["sites"]):
            scope["alerts"] = dict(scope["alerts"])  # {type: count}
            scope["figures"] = dict(scope["figures"])
        return body

    def figures_json(self) -> dict[str, Any]:
        """What is kept of a generated report: the figures of the community and of each
        site, without the alert lines and the tables that name staff (the report itself
        can be rendered again from the data)."""
        body = self.to_json()
        return {k: v for k, v in body.items() if k not in ("alerts", "sections")}

    def headline(self) -> dict[str, Any]:
        """The few community figures an announcement carries (no personal data)."""
        cov = self.community.coverage
        return {
            "date": self.day.isoformat(),
            "timezone": self.timezone,
            "passages": cov.passages,
            "temperature_coverage": cov.temperature_coverage,
            "registration_coverage": cov.registration_coverage,
            "staffing_coverage": cov.staffing_coverage,
            "device_uptime": cov.device_uptime,
            "fevers": self.community.alerts_of("fever"),
            "fevers_open": self.community.fevers_open,
            "unregistered_entries": self.community.alerts_of("unregistered_entry"),
            "quarantine_breaches": self.community.alerts_of("quarantine_breach"),
            "staffing_gaps": self.community.alerts_of("staffing_gap"),
            "device_outages": self.community.alerts_of("device_offline"),
            "inspections": self.community.figure("inspections"),
            "open_rectifications": self.community.figure("open_rectifications"),
            "enterprises_resumed": self.community.figure("enterprises_resumed"),
            "checked_same_day": self.community.figure("checked_same_day"),
            "sites": len(self.sites),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
