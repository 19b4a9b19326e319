"""A per-process memory of coverage work that cannot change any more, or that is proven
unchanged on every request.

Ingest does not trust an event stamped more than `CPM_MAX_EVENT_AGE_H` hours ago: it
stores it at the time it was received. So once an hour lies further back than that (plus
an hour's margin), no roll-up, duty or status event and no alert can land in it any more:
its figures are final and kept (per-hour totals, and the JSON of buckets made only of
such hours), as is who was on duty / which devices were online at a settled instant.

The unsettled tail (the last ~3 days) is different. Its roll-ups are updated in place and
its alerts are few, so both are read on every request. Its staffed and online time, the
costly part, is kept together with a fingerprint of the duty and status events it came
from (`event_fingerprint`, read on every request): while that is unchanged, only the
stretches still running are extended to now. A change written by any process shows up in
the fingerprint, so several API workers stay exact.

Everything is keyed by the scope: its checkpoints with their min_staff, active flag and
in-service period.
A process restart simply recomputes. If you edit old rows by hand, restart the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from services.api import coverage as cov
from services.api.coverage_intervals import event_fingerprint
from services.api.coverage_queries import Held, Scope, coverage_series

BucketKey = tuple[datetime, datetime, str]  # start, end, label
NOTHING: Mapping[BucketKey, bytes] = {}


def scope_key(scope: Scope) -> Hashable:
    members = None if scope.members is None else tuple(scope.members)
    service = tuple(sorted(scope.service.items()))
    return (tuple(sorted(scope.checkpoints.items())), members, scope.everyone, service)


def settled_before(now: datetime, max_event_age_h: int) -> datetime:
    return cov.floor_hour(now - timedelta(hours=max_event_age_h + 1))


class SettledHours:
    """The memory itself: bounded (a full store is simply emptied), thread-safe."""

    def __init__(
        self, max_entries: int = 300_000, max_buckets: int = 50_000, max_held: int = 256
    ) -> None:
        self.max_entries = max_entries
        self.max_buckets = max_buckets
        self.max_held = max_held
        self._lock = threading.Lock()
        # two levels, so a long scope key is hashed once per request, not once per hour
        self._hours: dict[Hashable, dict[int, cov.Totals]] = {}
        self._hour_count = 0
        self._buckets: dict[Hashable, dict[BucketKey, bytes]] = {}
        self._bucket_count = 0
        self._boundaries: dict[Hashable, list[Any]] = {}
        self._held: dict[Hashable, tuple[tuple[Any, ...], Held]] = {}
        self.hits = 0
        self.misses = 0
        self.held_hits = 0
        self.held_misses = 0

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

    def totals(self, key: Hashable, start: int, hours: int) -> list[cov.Totals] | None:
        """The totals of `hours` settled hours from `start` (epoch), if all are known."""
        with self._lock:
            known = self._hours.get(key, {})
            rows = [known.get(start + k * cov.HOUR) for k in range(hours)]
            if None in rows:
                self.misses += 1
                return None
            self.hits += 1
        return rows  # type: ignore[return-value]  # no None left

    def keep_totals(self, key: Hashable, start: int, rows: list[cov.Totals]) -> None:
        with self._lock:
            if self._hour_count + len(rows) > self.max_entries:
                self._hours.clear()
                self._hour_count = 0
            known = self._hours.setdefault(key, {})
            before = len(known)
            known.update((start + k * cov.HOUR, row) for k, row in enumerate(rows))
            self._hour_count += len(known) - before

    def bucket_bodies(self, key: Hashable) -> Mapping[BucketKey, bytes]:
        """The JSON of the settled buckets known for the scope (read-only)."""
        with self._lock:
            return self._buckets.get(key, NOTHING)

    @property
    def buckets_kept(self) -> int:
        return self._bucket_count

    def keep_bucket_bodies(self, key: Hashable, bodies: dict[BucketKey, bytes]) -> None:
        if not bodies:
            return
        with self._lock:
            if self._bucket_count + len(bodies) > self.max_buckets:
                self._buckets.clear()
                self._bucket_count = 0
            # a new dict, not an update: readers may be iterating the one they were given
            known = {**self._buckets.get(key, {}), **bodies}
            self._bucket_count += len(known) - len(self._buckets.get(key, ()))
            self._buckets[key] = known

    def held(self, slot: Hashable) -> tuple[tuple[Any, ...], Held] | None:
        with self._lock:
            return self._held.get(slot)

    def keep_held(self, slot: Hashable, fingerprint: tuple[Any, ...], held: Held) -> None:
        with self._lock:
            if len(self._held) >= self.max_held and slot not in self._held:
                self._held.pop(next(iter(self._held)))  # the oldest
            self._held[slot] = (fingerprint, held)


@dataclass(frozen=True, slots=True)
class KeptHeld:
    """`coverage_queries.HeldMemory` for windows that start at or after `since`, a
    settled instant: every event that can still change them lies in [since, end)."""

    memory: SettledHours
    key: Hashable
    since: datetime

    def held(
        self,
        conn: Connection,
        scope: Scope,
        start: datetime,
        end: datetime,
        until: int,
        compute: Callable[[], Held],
    ) -> Held:
        if start < self.since:
            raise ValueError("the window starts before the settled instant")
        # read before computing: whatever lands in between is then in the result too,
        # and changes the next request's fingerprint
        fingerprint = (self.since, *event_fingerprint(conn, scope.checkpoints, self.since, end))
        slot = (self.key, start, end)
        kept = self.memory.held(slot)
        if kept is not None and kept[0] == fingerprint and all(reaches(t, until) for t in kept[1]):
            self.memory.held_hits += 1
            return kept[1]
        self.memory.held_misses += 1
        fresh = compute()
        if all(t.extendable for t in fresh):
            self.memory.keep_held(slot, fingerprint, fresh)
        return fresh


def reaches(held: cov.HeldTime, until: int) -> bool:
    """Whether `held` answers for `until`: computed for it, or extendable up to it."""
    return held.until == until or (held.extendable and held.until < until)


@dataclass(frozen=True, slots=True)
class CoverageHours:
    """Per-hour totals of a window; the first `settled` hours are final."""

    key: Hashable
    rows: list[cov.Totals]
    settled: int


def cached_hours(
    conn: Connection,
    scope: Scope,
    start: datetime,
    end: datetime,
    now: datetime,
    memory: SettledHours,
    max_event_age_h: int,
) -> CoverageHours:
    """`coverage_series` from the roll-ups, as totals per hour, with what is settled (or
    proven unchanged) from memory."""
    key = scope_key(scope)
    since = settled_before(now, max_event_age_h)
    split = min(max(since, start), end)
    settled = int((split - start).total_seconds()) // cov.HOUR
    rows = memory.totals(key, cov.epoch(start), settled) if settled else []
    if rows is None:
        rows = cov.hour_totals(coverage_series(conn, scope, start, split, now))
        memory.keep_totals(key, cov.epoch(start), rows)
    if split < end:
        tail = coverage_series(
            conn,
            scope,
            split,
            end,
            now,
            # the state at a settled instant is final; at a later one it is not
            boundaries=memory if split == since else None,
            held=KeptHeld(memory, key, since),
        )
        rows = rows + cov.hour_totals(tail)
    return CoverageHours(key, rows, settled)
