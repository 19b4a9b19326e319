"""Closest pairs first, at a cost per item that does not depend on the window's density.

Each new item (a "seeker") asks its lane for the nearest free partner on either side of
its time. Partners are read from an ordered source (the database's index on open rows,
or a sorted list) a few at a time, starting at the seeker's time: never the whole
window. What was read is kept per lane with the key ranges it covers, so seekers close
together share one read, and a seeker reads further only when everything it saw was
taken (by doubling steps, so a thousand seekers at one timestamp cost a few reads).

The pairs come out in the order of `edge_key` over every (passage, reading) pair that
involves a seeker, each side taken once: exactly the greedy "closest pairs first" over
those pairs. A lazy heap holds, per seeker, a lower bound of its best free pair.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.core.enums import Screening
from services.ingest.rules import OpenPassage, OpenReading, ScreeningMatch, link_named

Lane = tuple[str, str]  # (checkpoint_id, direction)
Key = tuple[datetime, int]  # (ts, id): the order of a lane and of its index
Item = OpenPassage | OpenReading
EdgeKey = tuple[timedelta, int, int, int]
FIRST_READ = 2  # partners read per seeker and side at first
SPAN_READ = 4  # a sparse window is read whole if it holds under this many per seeker
MAX_READ = 1024  # the largest later read
BELOW, ABOVE = -1, 1 << 62  # ids around any real id, for keys at a timestamp's edges


@dataclass(frozen=True, slots=True)
class Seek:
    """Read up to `limit` partners of `lane` from `start` on (inclusive), ascending when
    `ascending` (stopping after `bound`), else descending (stopping before `bound`)."""

    lane: Lane
    start: Key
    bound: datetime
    ascending: bool


class PartnerSource(Protocol):
    def read(self, seeks: Sequence[Seek], limit: int) -> list[list[Item]]:
        """Per seek, its partners in the seek's order, at most `limit`."""
        ...

    def read_span(
        self, lanes: Sequence[Lane], first: datetime, last: datetime, limit: int
    ) -> list[Item] | None:
        """Every partner of `lanes` (any checkpoint of them with any direction of them)
        with first <= ts <= last, or None when there are more than `limit`."""
        ...


@dataclass
class MatchCost:
    """What a match read and did: the measure of its cost that timing cannot give."""

    reads: int = 0  # statements (or list searches) against a source
    rows: int = 0  # partners those returned
    steps: int = 0  # heap pops


def key_of(item: Item) -> Key:
    return (item.ts, item.id)


def edge_key(passage: Item, reading: Item) -> EdgeKey:
    """Smaller first: the gap; on a tie a passage before its reading, then the partner
    nearest in the lane's (ts, id) order. Each seeker meets its partners in this order by
    reading outwards from its own time, which is what makes the lazy heap exact."""
    gap = abs(passage.ts - reading.ts)
    if passage.ts < reading.ts:
        return (gap, 0, -passage.id, reading.id)
    if passage.ts > reading.ts:
        return (gap, 1, passage.id, -reading.id)
    return (gap, 0, passage.id, reading.id)


@dataclass
class LoadedLane:
    """The free partners of one lane read so far, and the key ranges read completely."""

    lane: Lane
    source: PartnerSource
    taken: set[int]
    cost: MatchCost
    free: list[Key] = field(default_factory=list)
    items: dict[int, Item] = field(default_factory=dict)
    # the key ranges read completely: sorted, disjoint, [starts[i], ends[i]]
    starts: list[Key] = field(default_factory=list)
    ends: list[Key] = field(default_factory=list)
    next_read: int = FIRST_READ
    # new items of this batch that seek partners themselves: not partners here (the
    # pairs between two new items are searched from one side only, see `match`)
    hidden: set[int] = field(default_factory=set)

    def add(self, seek: Seek, rows: list[Item], limit: int) -> None:
        for item in rows:
            if item.id not in self.items:
                self.items[item.id] = item
                if item.id not in self.taken and item.id not in self.hidden:
                    insort(self.free, key_of(item))
        if seek.ascending:
            end = key_of(rows[-1]) if len(rows) == limit else (seek.bound, ABOVE)
            self._cover(seek.start, end)
        else:
            end = key_of(rows[-1]) if len(rows) == limit else (seek.bound, BELOW)
            self._cover(end, seek.start)

    def _cover(self, lo: Key, hi: Key) -> None:
        if lo > hi:
            return
        i = bisect_left(self.ends, lo)  # the first span that ends at or after lo
        j = bisect_right(self.starts, hi)  # past the last span that starts by hi
        if i < j:
            lo, hi = min(lo, self.starts[i]), max(hi, self.ends[j - 1])
        self.starts[i:j] = [lo]
        self.ends[i:j] = [hi]

    def _span_at(self, key: Key) -> tuple[Key, Key] | None:
        i = bisect_right(self.starts, key) - 1
        if i >= 0 and key <= self.ends[i]:
            return self.starts[i], self.ends[i]
        return None

    def covers(self, *keys: Key) -> bool:
        """Whether every key lies in a range read completely."""
        return all(self._span_at(key) is not None for key in keys)

    def _read_more(self, seek: Seek, want: int) -> None:
        limit = min(MAX_READ, max(self.next_read, want + FIRST_READ))
        self.next_read = min(MAX_READ, self.next_read * 2)
        (rows,) = self.source.read([seek], limit)
        self.cost.reads += 1
        self.cost.rows += len(rows)
        self.add(seek, rows, limit)

    def first_after(self, start: Key, last_ts: datetime, want: int = 1) -> Item | None:
        """The free partner with the smallest key >= start and ts <= last_ts; `want`:
        how many seekers will ask here (read that many at once)."""
        key = start
        while True:
            span = self._span_at(key)
            if span is None:
                self._read_more(Seek(self.lane, key, last_ts, True), want)
                continue
            i = bisect_left(self.free, key)
            if i < len(self.free) and self.free[i] <= span[1]:
                found = self.free[i]
                return self.items[found[1]] if found[0] <= last_ts else None
            if span[1] >= (last_ts, ABOVE):
                return None
            key = (span[1][0], span[1][1] + 1)

    def last_before(self, start: Key, first_ts: datetime, want: int = 1) -> Item | None:
        """The free partner with the largest key <= start and ts >= first_ts."""
        key = start
        while True:
            span = self._span_at(key)
            if span is None:
                self._read_more(Seek(self.lane, key, first_ts, False), want)
                continue
            i = bisect_right(self.free, key) - 1
            if i >= 0 and self.free[i] >= span[0]:
                found = self.free[i]
                return self.items[found[1]] if found[0] >= first_ts else None
            if span[0] <= (first_ts, BELOW):
                return None
            key = (span[0][0], span[0][1] - 1)

    def take(self, item: Item) -> None:
        i = bisect_left(self.free, key_of(item))
        if i < len(self.free) and self.free[i] == key_of(item):
            del self.free[i]


@dataclass
class _Seekers:
    """New items of one kind, lane and time, sorted by id; only the ends are ever
    chosen (edge_key is monotonic in the seeker's id), so taken ones are trimmed there."""

    of_readings: bool
    members: list[Item] = field(default_factory=list)
    lo: int = 0
    hi: int | None = None

    def first(self, taken: set[int]) -> Item | None:
        if self.hi is None:
            self.hi = len(self.members) - 1
        while self.lo <= self.hi and self.members[self.lo].id in taken:
            self.lo += 1
        return self.members[self.lo] if self.lo <= self.hi else None

    def size(self) -> int:
        """At most how many are still free."""
        return len(self.members) if self.hi is None else self.hi - self.lo + 1

    def last(self, taken: set[int]) -> Item | None:
        if self.hi is None:
            self.hi = len(self.members) - 1
        while self.hi >= self.lo and self.members[self.hi].id in taken:
            self.hi -= 1
        return self.members[self.hi] if self.hi >= self.lo else None


class Matcher:
    """One batch's time-window matching; `cost` counts what it read and did."""

    def __init__(
        self,
        passages: PartnerSource,
        readings: PartnerSource,
        window: timedelta,
        taken_passages: set[int],
        taken_readings: set[int],
    ) -> None:
        self.window = window
        self.cost = MatchCost()
        self._sources = {True: passages, False: readings}  # keyed by "partners are passages"
        self._taken = {True: taken_passages, False: taken_readings}
        self._lanes: dict[tuple[bool, Lane], LoadedLane] = {}
        self._hidden: dict[bool, set[int]] = {True: set(), False: set()}

    def _lane(self, of_passages: bool, lane: Lane) -> LoadedLane:
        loaded = self._lanes.get((of_passages, lane))
        if loaded is None:
            loaded = LoadedLane(
                lane,
                self._sources[of_passages],
                self._taken[of_passages],
                self.cost,
                hidden=self._hidden[of_passages],
            )
            self._lanes[(of_passages, lane)] = loaded
        return loaded

    def _prefetch(self, of_passages: bool, points: Iterable[tuple[Lane, datetime]]) -> None:
        """One read for the first few partners on both sides of every seeker's time."""
        seeks = [
            Seek(lane, start, bound, ascending)
            for lane, ts in sorted(points)
            for start, bound, ascending in (
                ((ts, BELOW), ts - self.window, False),
                ((ts, 0), ts + self.window, True),
            )
        ]
        if not seeks:
            return
        results = self._sources[of_passages].read(seeks, FIRST_READ)
        self.cost.reads += 1
        for seek, rows in zip(seeks, results, strict=True):
            self.cost.rows += len(rows)
            self._lane(of_passages, seek.lane).add(seek, rows, FIRST_READ)

    def _read_lanes(self, of_passages: bool, points: list[tuple[Lane, datetime]]) -> None:
        """A dense window: per lane, the partners between its first and last seeker (and
        a few past the last) in one ordered read, plus a few before the first: two
        statements for the batch, about as many rows as the lanes hold between their
        seekers. A read cut off by its LIMIT still covers what it returned; the seekers
        past it are prefetched on their own."""
        per_lane: dict[Lane, list[datetime]] = {}
        for lane, ts in points:
            per_lane.setdefault(lane, []).append(ts)
        ranges = sorted((lane, min(stamps), max(stamps)) for lane, stamps in per_lane.items())
        limit = SPAN_READ * max(len(stamps) for stamps in per_lane.values()) + FIRST_READ
        source = self._sources[of_passages]
        for seeks, read_limit in (
            ([Seek(lane, (a, BELOW), b + self.window, True) for lane, a, b in ranges], limit),
            ([Seek(lane, (a, BELOW), a - self.window, False) for lane, a, _ in ranges], FIRST_READ),
        ):
            results = source.read(seeks, read_limit)
            self.cost.reads += 1
            for seek, rows in zip(seeks, results, strict=True):
                self.cost.rows += len(rows)
                self._lane(of_passages, seek.lane).add(seek, rows, read_limit)
        uncovered = [
            (lane, ts)
            for lane, ts in points
            if not self._lane(of_passages, lane).covers((ts, BELOW), (ts, 0))
        ]
        if uncovered:
            self._prefetch(of_passages, uncovered)

    def _read_span(self, of_passages: bool, points: list[tuple[Lane, datetime]]) -> bool:
        """The common case, a sparse window: one bounded read of everything the seekers
        could pair with. False when it holds too many (then each seeker reads its own)."""
        lanes = sorted({lane for lane, _ in points})
        first = min(ts for _, ts in points) - self.window
        last = max(ts for _, ts in points) + self.window
        limit = SPAN_READ * len(points) + 64
        rows = self._sources[of_passages].read_span(lanes, first, last, limit)
        self.cost.reads += 1
        if rows is None:
            self.cost.rows += limit
            return False
        self.cost.rows += len(rows)
        by_lane: dict[Lane, list[Item]] = {}
        for item in rows:
            by_lane.setdefault((item.checkpoint_id, item.direction), []).append(item)
        for lane in lanes:
            seek = Seek(lane, (first, BELOW), last, True)
            self._lane(of_passages, lane).add(seek, by_lane.get(lane, []), limit + 1)
        return True

    def _best(self, group: _Seekers) -> tuple[EdgeKey, Item, Item] | None:
        """The group's best free pair: (edge key, its seeker, the partner)."""
        first = group.first(self._taken[not group.of_readings])
        if first is None:
            return None
        last = group.last(self._taken[not group.of_readings])
        assert last is not None
        lane = self._lane(group.of_readings, (first.checkpoint_id, first.direction))
        best: tuple[EdgeKey, Item, Item] | None = None
        want = group.size()
        for partner in (
            lane.last_before((first.ts, BELOW), first.ts - self.window, want),
            lane.first_after((first.ts, 0), first.ts + self.window, want),
        ):
            if partner is None:
                continue
            for seeker in (first, last):  # the key is monotonic in the seeker's id
                pair = (partner, seeker) if group.of_readings else (seeker, partner)
                key = edge_key(*pair)
                if best is None or key < best[0]:
                    best = (key, seeker, partner)
        return best

    def match(
        self, readings: Sequence[OpenReading], passages: Sequence[OpenPassage]
    ) -> list[tuple[int, int]]:
        """(passage id, reading id) pairs for the free seekers, closest first."""
        taken_p, taken_r = self._taken[True], self._taken[False]
        free_r = [r for r in readings if r.id not in taken_r]
        free_p = [p for p in passages if p.id not in taken_p]
        # a pair of two new items needs one side to find it, not both: the side with
        # fewer seekers does (the other does not see them as partners), which spares the
        # heap the entries, and the searches again, of the many whose partner was taken.
        # Every pair still has a seeker that looks for it, so the greedy is unchanged.
        fewer_readings = len(free_r) <= len(free_p)
        hide = free_r if fewer_readings else free_p
        self._hidden[not fewer_readings].update(item.id for item in hide)
        # seekers at one time in one lane share their candidates (a stuck clock): one
        # heap entry for all of them, so their contention costs no more than one seeker
        groups: dict[tuple[bool, Lane, datetime], _Seekers] = {}
        everyone: list[Item] = [*free_r, *free_p]
        for seeker in everyone:
            of_readings = isinstance(seeker, OpenReading)
            where = (of_readings, (seeker.checkpoint_id, seeker.direction), seeker.ts)
            groups.setdefault(where, _Seekers(of_readings)).members.append(seeker)
        for of_readings in (True, False):
            points = [(lane, ts) for (kind, lane, ts) in groups if kind is of_readings]
            if points and not self._read_span(of_readings, points):
                self._read_lanes(of_readings, points)
        heap: list[tuple[EdgeKey, int, _Seekers, Item, Item]] = []
        for n, group in enumerate(groups.values()):
            group.members.sort(key=lambda item: item.id)
            best = self._best(group)
            if best is not None:
                heap.append((best[0], n, group, best[1], best[2]))
        heapq.heapify(heap)
        pairs: list[tuple[int, int]] = []
        while heap:
            self.cost.steps += 1
            key, n, group, seeker, partner = heapq.heappop(heap)
            if seeker.id in self._taken[not group.of_readings] or (
                partner.id in self._taken[group.of_readings]
            ):
                # taking only removes pairs: while both sides of the entry are free it
                # is still the group's best (a key names one pair), else look again
                best = self._best(group)
                if best is None:
                    continue
                if best[0] != key:
                    heapq.heappush(heap, (best[0], n, group, best[1], best[2]))
                    continue
                seeker, partner = best[1], best[2]
            passage, reading = (partner, seeker) if group.of_readings else (seeker, partner)
            self._claim(passage, reading)
            pairs.append((passage.id, reading.id))
            best = self._best(group)
            if best is not None:
                heapq.heappush(heap, (best[0], n, group, best[1], best[2]))
        return pairs

    def loaded_passages(self) -> list[OpenPassage]:
        """Every passage read from the source (the stored ones the matches may name)."""
        return [
            item
            for (of_passages, _lane), loaded in self._lanes.items()
            if of_passages
            for item in loaded.items.values()
            if isinstance(item, OpenPassage)
        ]

    def _claim(self, passage: Item, reading: Item) -> None:
        self._taken[True].add(passage.id)
        self._taken[False].add(reading.id)
        for of_passages, item in ((True, passage), (False, reading)):
            loaded = self._lanes.get((of_passages, (item.checkpoint_id, item.direction)))
            if loaded is not None:
                loaded.take(item)


class SortedPartners:
    """A partner source over items in memory (the pure rule, and tests)."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._lanes: dict[Lane, list[Key]] = {}
        self._items: dict[int, Item] = {}
        for item in items:
            self._lanes.setdefault((item.checkpoint_id, item.direction), []).append(key_of(item))
            self._items[item.id] = item
        for keys in self._lanes.values():
            keys.sort()

    def read_span(
        self, lanes: Sequence[Lane], first: datetime, last: datetime, limit: int
    ) -> list[Item] | None:
        checkpoints = {cp for cp, _ in lanes}
        directions = {direction for _, direction in lanes}
        found = [
            self._items[key[1]]
            for lane, keys in self._lanes.items()
            if lane[0] in checkpoints and lane[1] in directions
            for key in keys[bisect_left(keys, (first, BELOW)) : bisect_right(keys, (last, ABOVE))]
        ]
        return None if len(found) > limit else found

    def read(self, seeks: Sequence[Seek], limit: int) -> list[list[Item]]:
        out: list[list[Item]] = []
        for seek in seeks:
            keys = self._lanes.get(seek.lane, [])
            if seek.ascending:
                i = bisect_left(keys, seek.start)
                picked = [k for k in keys[i : i + limit] if k[0] <= seek.bound]
            else:
                i = bisect_right(keys, seek.start)
                picked = [k for k in reversed(keys[max(0, i - limit) : i]) if k[0] >= seek.bound]
            out.append([self._items[k[1]] for k in picked])
        return out


def match_screenings(
    passages: list[OpenPassage], readings: list[OpenReading], window_s: float
) -> list[ScreeningMatch]:
    """Pair readings with the passages they screened.

    A reading that names its entry (`entry_msg_id`) screens that passage and no other.
    An unnamed reading screens the nearest unscreened passage at the same checkpoint and
    direction within ± `window_s`; the closest pairs are taken first (`edge_key`), each
    side once.
    """
    matches = link_named(passages, readings)
    taken_passages = {m.passage_id for m in matches}
    taken_readings = {m.reading_id for m in matches}
    unnamed = [r for r in readings if r.entry_msg_id is None]
    matcher = Matcher(
        SortedPartners(p for p in passages if p.id not in taken_passages),
        SortedPartners(unnamed),
        timedelta(seconds=window_s),
        taken_passages,
        taken_readings,
    )
    for passage_id, reading_id in matcher.match(unnamed, []):
        matches.append(ScreeningMatch(passage_id, reading_id, Screening.TIME_WINDOW))
    return matches
