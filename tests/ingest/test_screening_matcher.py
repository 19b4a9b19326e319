"""The screening matcher: closest pairs first, and a cost per message that stays flat
however many open passages and readings share the window (counted, never timed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.matching import (
    FIRST_READ,
    Matcher,
    SortedPartners,
    edge_key,
    match_screenings,
)
from services.ingest.rules import OpenPassage, OpenReading

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=30)


def passage(pid: int, seconds: float, cp: str = "cp-1", direction: str = "in") -> OpenPassage:
    return OpenPassage(pid, cp, direction, T0 + timedelta(seconds=seconds), f"e{pid}")


def reading(rid: int, seconds: float, cp: str = "cp-1", direction: str = "in") -> OpenReading:
    return OpenReading(rid, cp, direction, T0 + timedelta(seconds=seconds), None)


class SeeksOnly(SortedPartners):
    """A window too full to be read whole: every seeker reads its own few partners."""

    def read_span(self, *args: object) -> None:
        return None


def greedy_over_all_pairs(
    passages: list[OpenPassage], readings: list[OpenReading], seekers: set[int] | None = None
) -> set[tuple[int, int]]:
    """The definition: every pair within the window (that involves a seeker), sorted by
    edge_key, taken when both sides are still free."""
    edges = sorted(
        (edge_key(p, r), p.id, r.id)
        for p in passages
        for r in readings
        if (p.checkpoint_id, p.direction) == (r.checkpoint_id, r.direction)
        and abs(p.ts - r.ts) <= WINDOW
        and (seekers is None or p.id in seekers or r.id in seekers)
    )
    taken_p: set[int] = set()
    taken_r: set[int] = set()
    pairs = set()
    for _key, pid, rid in edges:
        if pid not in taken_p and rid not in taken_r:
            taken_p.add(pid)
            taken_r.add(rid)
            pairs.add((pid, rid))
    return pairs


@pytest.mark.parametrize("seed", range(40))
def test_matcher_equals_the_greedy_over_every_pair(seed: int) -> None:
    rng = random.Random(seed)
    spread = rng.choice([0, 2, 60, 600])  # 0: a stuck clock, every item at one time
    passages = [
        passage(n, rng.randint(0, spread), direction=rng.choice(["in", "out"]))
        for n in range(1, rng.randint(2, 60))
    ]
    readings = [
        reading(1000 + n, rng.randint(0, spread), direction=rng.choice(["in", "out"]))
        for n in range(rng.randint(1, 60))
    ]
    matched = {(m.passage_id, m.reading_id) for m in match_screenings(passages, readings, 30)}
    assert matched == greedy_over_all_pairs(passages, readings)

    # as ingest uses it: only the batch's new items seek, the stored ones are partners
    new = {item.id for item in rng.sample([*passages, *readings], k=len(readings))}
    stored_p = [p for p in passages if p.id not in new]
    stored_r = [r for r in readings if r.id not in new]
    # stored items were already matched among themselves where they could be
    already = greedy_over_all_pairs(stored_p, stored_r)
    open_p = [p for p in passages if p.id not in {pid for pid, _ in already}]
    open_r = [r for r in readings if r.id not in {rid for _, rid in already}]
    matcher = Matcher(SortedPartners(open_p), SortedPartners(open_r), WINDOW, set(), set())
    got = set(matcher.match([r for r in open_r if r.id in new], [p for p in open_p if p.id in new]))
    assert got == greedy_over_all_pairs(open_p, open_r, seekers=new)


@pytest.mark.parametrize("seed", range(300))
def test_a_window_too_full_to_read_whole_gives_the_greedy_pairs(seed: int) -> None:
    """Every read per lane: between the seekers (cut off by its LIMIT when many stored
    items lie there), before them, and each seeker's own; the pairs stay the greedy's."""
    rng = random.Random(seed)
    spread = rng.choice([0, 1, 5, 60])
    lanes = [("cp-1", "in"), ("cp-1", "out"), ("cp-2", "in")][: rng.randint(1, 3)]

    def at() -> dict[str, object]:
        cp, direction = rng.choice(lanes)
        return {"seconds": rng.randint(0, spread * 4) / 4, "cp": cp, "direction": direction}

    passages = [passage(n, **at()) for n in range(1, rng.randint(2, 120))]  # type: ignore[arg-type]
    readings = [reading(1000 + n, **at()) for n in range(rng.randint(1, 60))]  # type: ignore[arg-type]
    everyone = [*passages, *readings]
    new = {item.id for item in rng.sample(everyone, k=rng.randint(1, min(12, len(everyone))))}
    stored_p = [p for p in passages if p.id not in new]
    stored_r = [r for r in readings if r.id not in new]
    already = greedy_over_all_pairs(stored_p, stored_r)
    open_p = [p for p in passages if p.id not in {pid for pid, _ in already}]
    open_r = [r for r in readings if r.id not in {rid for _, rid in already}]
    matcher = Matcher(SeeksOnly(open_p), SeeksOnly(open_r), WINDOW, set(), set())
    got = set(matcher.match([r for r in open_r if r.id in new], [p for p in open_p if p.id in new]))
    assert got == greedy_over_all_pairs(open_p, open_r, seekers=new)


def test_a_later_passage_closer_to_a_reading_wins_over_a_stored_one() -> None:
    stored = [passage(1, 0)]
    new_passage, new_reading = passage(2, 19), reading(9, 20)
    matcher = Matcher(
        SortedPartners([*stored, new_passage]), SortedPartners([new_reading]), WINDOW, set(), set()
    )
    assert matcher.match([new_reading], [new_passage]) == [(2, 9)]


def rows_per_message(open_passages: int, spread_s: float, batch: int = 200) -> float:
    """Rows the matcher reads per new message, with `open_passages` unpaired passages in
    one lane within `spread_s` seconds (0: a stuck clock) and a batch of `batch` new
    readings and passages at the same times."""
    step = spread_s / open_passages
    stored = [passage(n, n * step) for n in range(1, open_passages + 1)]
    new_p = [passage(10**7 + n, spread_s / 2 + n * step) for n in range(batch // 2)]
    new_r = [reading(2 * 10**7 + n, spread_s / 2 + n * step) for n in range(batch // 2)]
    matcher = Matcher(
        SortedPartners([*stored, *new_p]), SortedPartners(new_r), WINDOW, set(), set()
    )
    pairs = matcher.match(new_r, new_p)
    assert len(pairs) == len(new_r)  # every reading found a passage
    return (matcher.cost.rows + matcher.cost.steps) / batch


@pytest.mark.parametrize("spread_s", [0.0, 5.0])
def test_cost_per_message_is_flat_as_the_window_fills(spread_s: float) -> None:
    costs = {n: rows_per_message(n, spread_s) for n in (1_000, 10_000, 100_000)}
    # the same work per message with 100x as many open passages in the window
    assert costs[100_000] <= costs[1_000] * 1.1, costs
    assert costs[100_000] <= 4 * FIRST_READ + 4, costs


def dense_batch_cost(stored: int, batch: int = 600) -> tuple[int, float, float]:
    """(statements, rows read and heap steps per message) for a batch of new passages and
    readings (two to one) in 8 lanes, just after `stored` open passages within 5 s: the
    dense load."""
    rng = random.Random(1)
    lanes = [(f"cp-{c}", d) for c in range(4) for d in ("in", "out")]
    old = [passage(n, 5 * n / stored, *rng.choice(lanes)) for n in range(1, stored + 1)]
    new_p, new_r = [], []
    for n in range(batch):
        seconds, lane = 5 + 0.1 * n / batch, rng.choice(lanes)
        if n % 3 == 2:
            new_r.append(reading(10**7 + n, seconds, *lane))
        else:
            new_p.append(passage(10**7 + n, seconds, *lane))
    matcher = Matcher(SortedPartners([*old, *new_p]), SortedPartners(new_r), WINDOW, set(), set())
    assert len(matcher.match(new_r, new_p)) == len(new_r)
    return matcher.cost.reads, matcher.cost.rows / batch, matcher.cost.steps / batch


@pytest.mark.parametrize("stored", [10_000, 100_000])
def test_a_dense_batch_reads_each_lane_once_not_each_seeker(stored: int) -> None:
    # the window is too full to read whole: the partners between the lane's seekers come
    # in one ordered read per lane (a per-seeker prefetch read 4 rows a seeker and then
    # read again for each seeker whose few were taken: 8-9 statements, 3.1 rows/message)
    reads, rows, _steps = dense_batch_cost(stored)
    assert reads <= 4, reads  # a span try per side, the lane reads (2) for the readings
    assert rows <= 2.6, rows


@pytest.mark.parametrize("stored", [10_000, 100_000])
def test_a_pair_of_two_new_items_is_searched_from_one_side(stored: int) -> None:
    # each new passage also searched the new readings: every reading claimed sent its
    # other suitors back to the heap to search again (1.6 steps/message); now only the
    # readings (the fewer) search the new passages
    _reads, _rows, steps = dense_batch_cost(stored)
    assert steps <= 0.6, steps
