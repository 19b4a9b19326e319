"""Play a simulation straight into ingest's batch processor, without a broker.

    manifest = play_direct(simulation, IngestWriterProcess(settings))

For a history that is generated here and now (the backfill of `cpmon up`), the broker
adds nothing but cost: every message would be sent, routed, acknowledged and received
once more. Here the devices' messages (the very topics and payloads they would publish,
second copies included) and the wills the broker would publish for their drops go to
`services.ingest.batch.BatchProcessor.process` in large batches: the same parse,
classify, screen, write and roll-up code as the ingest service, dead letters included,
so what is stored is what ingest would store.

`IngestWriterProcess` runs the batch processor in a process of its own, one batch in
flight, so generating the next batch overlaps with storing the last (two cores).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

from services.core.protocol import encode
from services.core.settings import Settings
from services.ingest.parse import Inbound

from .runner import Simulation
from .timeline import Op

log = logging.getLogger(__name__)
BATCH = 4000  # messages per transaction: large, so a commit's fixed cost is spread thin
TRANSIENT_TRIES = 5  # a busy database (another writer): try the batch again, then give up


class Store(Protocol):
    """Where batches go: `submit` may return before the batch is committed; `flush`
    returns once everything submitted is. Both raise if a batch could not be stored."""

    stored: int  # messages of committed batches

    def submit(self, items: list[Inbound]) -> None: ...

    def flush(self) -> None: ...


class InProcessStore:
    """The batch processor in this process (tests, and small runs)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.stored = 0

    def submit(self, items: list[Inbound]) -> None:
        self.processor.process(items)
        self.stored += len(items)

    def flush(self) -> None:
        pass


class IngestWriterProcess:
    """The batch processor in a child process, with one batch in flight."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(
            target=_writer_main, args=(settings, child_end), name="cpm-history-writer"
        )
        self._process.start()
        child_end.close()
        self._in_flight = 0
        self.stored = 0

    def submit(self, items: list[Inbound]) -> None:
        self.flush()
        self._pipe.send(items)
        self._in_flight = len(items)

    def flush(self) -> None:
        if not self._in_flight:
            return
        try:
            error = self._pipe.recv()
        except EOFError:
            raise RuntimeError("the history writer process died") from None
        if error:
            raise RuntimeError(f"the history writer could not store a batch: {error}")
        self.stored += self._in_flight
        self._in_flight = 0

    def close(self) -> None:
        """Let the child finish (after `flush`, everything is stored) and end."""
        with contextlib.suppress(OSError):
            self._pipe.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
        self._pipe.close()


def _writer_main(settings: Settings, pipe: Connection) -> None:
    from services.core.db import get_engine
    from services.ingest.batch import BatchProcessor, is_transient

    processor = BatchProcessor(get_engine(settings.database_url), settings)
    # the parent gone (cpmon up stopped mid-history): end quietly; a batch is all or
    # nothing, and the history is not played again on a registry already loaded
    with contextlib.suppress(EOFError, OSError):
        _write_batches(processor, is_transient, pipe)


def _write_batches(processor: Any, is_transient: Any, pipe: Connection) -> None:
    while (items := pipe.recv()) is not None:
        error = ""
        for attempt in range(TRANSIENT_TRIES):
            try:
                processor.process(items)
                error = ""
                break
            except Exception as exc:  # sent back to the parent, which stops the run
                error = f"{type(exc).__name__}: {exc}"
                if not is_transient(exc):
                    break
                time.sleep(0.5 * 2**attempt)
        pipe.send(error)


def play_direct(
    simulation: Simulation,
    store: Store,
    batch: int = BATCH,
    on_batch: Callable[[float, int], None] | None = None,
) -> dict[str, Any]:
    """Play the plan into `store` as fast as it takes it and return the manifest.
    `on_batch(simulated_t, stored)` after each batch handed over."""
    prefix = simulation.topic_prefix
    wills: dict[str, tuple[str, bytes]] = {}  # checkpoint -> its will, set at connect
    pending: list[Inbound] = []

    def deliver(topic: str, payload: bytes) -> None:
        # stamped as it reaches ingest, as the receiver does: a status counts from its
        # receipt (settle_history in services/deploy/up.py dates the history's statuses)
        pending.append(Inbound(topic, payload, datetime.now(UTC)))

    for item in simulation.plan.items():
        simulation.now = max(simulation.now, item.t)
        if item.op is Op.CONNECT:
            assert item.message is not None
            wills[item.checkpoint_id] = (item.topic(prefix), encode(item.message))
        elif item.op is Op.DROP:
            # the broker publishes the will of a connection that died
            if item.checkpoint_id in wills:
                deliver(*wills[item.checkpoint_id])
                simulation.wills_caused += 1
        elif item.op is Op.PUBLISH:
            topic, payload = item.topic(prefix), simulation._payload(item)
            for _ in range(2 if item.duplicate else 1):
                deliver(topic, payload)
                simulation.messages_published += 1
        simulation.builder.add(item)
        if len(pending) >= batch:
            store.submit(pending)
            pending = []
            if on_batch is not None:
                on_batch(simulation.now, store.stored)
    if pending:
        store.submit(pending)
    store.flush()
    if on_batch is not None:
        on_batch(simulation.now, store.stored)
    return simulation.builder.build(True, 0)


class ProgressLog:
    """A line every `every_s` on a log stream (not a TTY display): how far the simulated
    time got, the messages stored, the rate and when it will be done."""

    def __init__(
        self,
        start: float,
        end: float,
        say: Callable[[str], None],
        every_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start, self.end, self.say, self.every_s, self.clock = start, end, say, every_s, clock
        self.began = self._said_at = clock()

    def __call__(self, simulated_t: float, stored: int, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._said_at < self.every_s:
            return
        self._said_at = now
        self.say(progress_line(self.start, self.end, simulated_t, stored, now - self.began))


def progress_line(start: float, end: float, reached: float, stored: int, elapsed: float) -> str:
    done = min(max((reached - start) / max(end - start, 1e-9), 0.0), 1.0)
    rate = stored / elapsed if elapsed > 0 else 0.0
    eta = f"ETA {_span(elapsed * (1 - done) / done)}" if 0 < done < 1 else "done"
    at = datetime.fromtimestamp(reached, UTC).strftime("%Y-%m-%d %H:%M")
    return (
        f"history: simulated {at} UTC ({done:.0%} of {_span(end - start)}), "
        f"{stored:,} messages stored, {rate:,.0f} msg/s, {eta}"
    )


def _span(seconds: float) -> str:
    whole = round(seconds)
    if whole >= 86_400 and whole % 86_400 == 0:
        return f"{whole // 86_400} days"
    if whole >= 3600:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"
