"""Pro-forma screening, judged per checkpoint lane (checkpoint, direction) over its
latest readings, as pure functions: a thermometer waved at nobody, or at the air,
leaves readings that real people cannot produce.

- a long run of identical readings;
- a spread too small for a crowd of real people;
- readings faster than a person can be screened;
- readings that never met a passage (old enough to have been matched);
- passages all screened by one reading.

Each check reports its statistic and threshold; any one failing makes the lane
`suspect`. Thresholds and how they were chosen: docs/alerts.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.alerts.event_rules import AlertType, Finding

OK, SUSPECT, NO_DATA = "ok", "suspect", "no_data"


@dataclass(frozen=True, slots=True)
class ScreeningThresholds:
    window: int = 30  # the latest readings judged per lane
    identical_run: int = 12  # this many equal readings in a row
    min_spread_c: float = 0.08  # population standard deviation below this
    min_interval_s: float = 1.0  # mean time between readings below this
    max_unmatched_share: float = 0.5  # share of readings that met no passage
    max_passages_per_reading: int = 3  # one reading screening this many passages


@dataclass(frozen=True, slots=True)
class LaneReading:
    id: int
    ts: datetime
    temp_c: float
    matched: bool | None  # None: too recent to tell


@dataclass(slots=True)
class Verdict:
    status: str
    readings: int
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["failed"]]


def longest_run(temps: Sequence[float]) -> int:
    best = run = 0
    previous: float | None = None
    for temp in temps:
        run = run + 1 if previous is not None and round(temp, 1) == round(previous, 1) else 1
        best = max(best, run)
        previous = temp
    return best


def _check(name: str, statistic: float, threshold: float, failed: bool) -> dict[str, Any]:
    return {
        "check": name,
        "statistic": round(statistic, 3),
        "threshold": threshold,
        "failed": failed,
    }


def judge(
    readings: Sequence[LaneReading], t: ScreeningThresholds, passages_per_reading: int = 0
) -> Verdict:
    """The lane's verdict over its latest readings (oldest first, at most `t.window`)."""
    latest = list(readings)[-t.window :]
    n = len(latest)
    checks = []
    if n >= t.identical_run:
        run = longest_run([r.temp_c for r in latest])
        checks.append(_check("identical_run", run, t.identical_run, run >= t.identical_run))
    if n >= t.window:
        spread = statistics.pstdev(r.temp_c for r in latest)
        checks.append(_check("spread_c", spread, t.min_spread_c, spread < t.min_spread_c))
        seconds = (latest[-1].ts - latest[0].ts).total_seconds() / (n - 1)
        checks.append(_check("interval_s", seconds, t.min_interval_s, seconds < t.min_interval_s))
    judged = [r for r in latest if r.matched is not None]
    if len(judged) * 2 >= t.window:
        share = sum(not r.matched for r in judged) / len(judged)
        checks.append(
            _check("unmatched_share", share, t.max_unmatched_share, share > t.max_unmatched_share)
        )
    if passages_per_reading:
        checks.append(
            _check(
                "passages_per_reading",
                passages_per_reading,
                t.max_passages_per_reading,
                passages_per_reading >= t.max_passages_per_reading,
            )
        )
    if not checks:
        return Verdict(NO_DATA, n)
    verdict = Verdict(OK, n, checks)
    if verdict.failed:
        verdict.status = SUSPECT
    return verdict


def suspect_finding(
    checkpoint_id: str,
    site_id: str,
    direction: str,
    verdict: Verdict,
    readings: Sequence[LaneReading],
) -> Finding | None:
    """The alert for a suspect lane, with the evidence: the readings, each failed
    check's statistic and threshold."""
    if verdict.status != SUSPECT:
        return None
    names = ", ".join(c["check"] for c in verdict.failed)
    return Finding(
        AlertType.SCREENING_SUSPECT,
        checkpoint_id,
        site_id,
        f"lane:{direction}",
        f"Screening at {checkpoint_id} ({direction}) looks pro forma: {names}",
        {
            "direction": direction,
            "checks": verdict.failed,
            "readings": [
                {"id": r.id, "ts": r.ts.isoformat(), "temp_c": r.temp_c} for r in readings
            ],
        },
    )
