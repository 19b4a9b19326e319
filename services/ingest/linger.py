"""How long a batch waits to fill, from how fast messages arrive (pure).

A batch pays a cost whatever its size: the commit, and a `checkpoint_state` and roll-up
row for every checkpoint it touches (~100 on the simulator's load), ~6 ms on SQLite on
the shared test box. With a fixed linger the batch size follows the arrival rate, so at
a few thousand messages a second batches stay at a hundred or two and that cost is half
the writer's CPU per message (docs/benchmarks.md). Above `QUIET_RATE` the linger grows
with the rate up to `busy_s` at `BUSY_RATE`: batches grow under load, while at the rates
of a normal day (tens to ~1,000 messages a second, where alert latency is measured) a
message waits no longer than before.
"""

from __future__ import annotations

from dataclasses import dataclass

QUIET_RATE = 1500.0  # messages/s up to which the linger stays the base one
BUSY_RATE = 4000.0  # messages/s from which it is `busy_s`
MIN_SAMPLE_S = 0.5  # a rate is measured over at least this long: a burst of a
# publisher catching up (a few hundred messages at once) is not a busy rate


def linger_s(rate: float, base_s: float, busy_s: float) -> float:
    """The linger for an arrival rate (messages/s): `base_s` up to QUIET_RATE, then
    growing linearly to `busy_s` at BUSY_RATE. Never below `base_s`."""
    if busy_s <= base_s or rate <= QUIET_RATE:
        return base_s
    if rate >= BUSY_RATE:
        return busy_s
    return base_s + (rate - QUIET_RATE) / (BUSY_RATE - QUIET_RATE) * (busy_s - base_s)


@dataclass
class ArrivalRate:
    """Messages per second, from a running count of arrivals sampled now and then."""

    count: int = 0
    at: float | None = None
    rate: float = 0.0

    def sample(self, count: int, now: float) -> float:
        """The rate over the time since the last sample that counted (at least
        MIN_SAMPLE_S: shorter gaps keep the previous rate)."""
        if self.at is None:
            self.count, self.at = count, now
            return self.rate
        elapsed = now - self.at
        if elapsed >= MIN_SAMPLE_S:
            self.rate = (count - self.count) / elapsed
            self.count, self.at = count, now
        return self.rate
