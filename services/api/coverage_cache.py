"""A memory of the per-hour coverage figures of *settled* hours.

Ingest does not trust an event stamped more than `CPM_MAX_EVENT_AGE_H` hours ago: it
stores it at the time it was received. So once an hour lies further back than that (plus
an hour's margin), no roll-up, duty or status event and no alert can land in it any more:
its figures are final and can be kept instead of being summed again on every request.
Only the unsettled tail (the last ~3 days) is read from the database each time.
A process restart, or a change of a checkpoint's min_staff or active flag (part of the
key), simply recomputes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from services.api import coverage as cov
from services.api.coverage_queries import Scope, coverage_series

HourFigures = tuple[dict[str, int], float, float, float, int]


class SettledHours:
    def __init__(self, max_entries: int = 300_000) -> None:
        self.max_entries = max_entries
        self._data: dict[tuple[Hashable, int], HourFigures] = {}
        self._lock = threading.Lock()
        self._boundaries: dict[Hashable, list[Any]] = {}
        self.hits = 0
        self.misses = 0

    def latest_before(self, key: Hashable, compute: Callable[[], list[Any]]) -> list[Any]:
        """Who was on duty / which devices were online at a settled instant."""
        with self._lock:
            found = self._boundaries.get(key)
        if found is None:
            found = compute()
            with self._lock:
                if len(self._boundaries) > 1000:
                    self._boundaries.clear()  # bounded; one entry per hour and scope
                self._boundaries[key] = found
        return found

    def get(self, key: Hashable, start: int, hours: int) -> cov.HourSeries | None:
        with self._lock:
            rows = [self._data.get((key, start + k * cov.HOUR)) for k in range(hours)]
        if any(row is None for row in rows):
            self.misses += 1
            return None
        self.hits += 1
        series = cov.HourSeries(start=start, hours=hours)
        for k, row in enumerate(rows):
            assert row is not None
            counters, staffed, online, cp_time, alerts = row
            series.counters[k] = dict(counters)
            series.staffed_s[k] = staffed
            series.online_s[k] = online
            series.checkpoint_s[k] = cp_time
            series.alerts_opened[k] = alerts
        return series

    def put(self, key: Hashable, series: cov.HourSeries) -> None:
        with self._lock:
            if len(self._data) + series.hours > self.max_entries:
                self._data.clear()  # crude, but bounded; settled hours are cheap to redo
            for k in range(series.hours):
                self._data[(key, series.start + k * cov.HOUR)] = (
                    dict(series.counters[k]),
                    series.staffed_s[k],
                    series.online_s[k],
                    series.checkpoint_s[k],
                    series.alerts_opened[k],
                )


def concat(first: cov.HourSeries, second: cov.HourSeries) -> cov.HourSeries:
    out = cov.HourSeries(start=first.start, hours=first.hours + second.hours)
    for name in ("counters", "staffed_s", "online_s", "checkpoint_s", "alerts_opened"):
        setattr(out, name, getattr(first, name) + getattr(second, name))
    return out


def settled_before(now: datetime, max_event_age_h: int) -> datetime:
    return cov.floor_hour(now - timedelta(hours=max_event_age_h + 1))


def cached_series(
    conn: Connection,
    scope: Scope,
    start: datetime,
    end: datetime,
    now: datetime,
    cache: SettledHours,
    max_event_age_h: int,
) -> cov.HourSeries:
    """`coverage_series` from the roll-ups, with settled hours from memory."""
    split = min(end, settled_before(now, max_event_age_h))
    if split <= start:
        return coverage_series(conn, scope, start, end, now)
    key: Any = (tuple(sorted(scope.checkpoints.items())), tuple(scope.members or ()) or None)
    hours = int((split - start).total_seconds()) // cov.HOUR
    old = cache.get(key, cov.epoch(start), hours)
    if old is None:
        old = coverage_series(conn, scope, start, split, now)
        cache.put(key, old)
    if split == end:
        return old
    # the tail starts at the settled boundary: the state there is final, so remembered
    return concat(old, coverage_series(conn, scope, split, end, now, boundaries=cache))
