"""Where batches are parsed and written: in this process, or in a writer process.

One Python process can use one core. So by default ingest runs the batch processor in a
child process: the parent receives and acknowledges, the child parses and commits, and
the two overlap on two cores (since receiver.py, receiving costs a fraction of storing:
~15 vs 45-105 µs a message on the shared test box, docs/benchmarks.md). Both writers have
one method, `process(batch)`, with the contract of `BatchProcessor.process`: it returns
the batch's outcome once it is committed, or raises, and then nothing of the batch may
be acknowledged.

The child holds no state that matters: every write is idempotent (unique keys), so when
it dies mid-batch the parent starts another and hands it the same batch again. When the
parent dies, the child sees its pipe close and exits.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import signal
import threading
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

from sqlalchemy import Engine

from services.core.settings import Settings
from services.ingest.batch import BatchProcessor, is_transient
from services.ingest.parse import Inbound
from services.ingest.store import BatchOutcome

log = logging.getLogger(__name__)


class WriteFailed(Exception):
    """The writer process could not commit a batch; `transient`: worth retrying as is;
    `cause`: the name of the error behind it (for the log)."""

    def __init__(self, detail: str, transient: bool, cause: str = "WriterGone") -> None:
        super().__init__(detail)
        self.transient = transient
        self.cause = cause


class Writer(Protocol):
    def start(self) -> None: ...

    def process(self, items: list[Inbound]) -> BatchOutcome: ...

    def close(self) -> None: ...


class ThreadWriter:
    """Parse and write in the calling thread (CPM_INGEST_WRITER=thread)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.processor = BatchProcessor(engine, settings)

    def start(self) -> None:
        pass

    def process(self, items: list[Inbound]) -> BatchOutcome:
        return self.processor.process(items)

    def close(self) -> None:
        pass


class ProcessWriter:
    """Parse and write in a child process (CPM_INGEST_WRITER=process, the default)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # the parent has threads
        self._logs: Any = self._context.Queue()
        self._process: Any = None
        self._pipe: Connection | None = None
        self.restarts = 0
        self._closed = False
        self._log_thread = threading.Thread(
            target=forward_logs, args=(self._logs,), name="ingest-writer-logs", daemon=True
        )
        self._log_thread.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:
            self.restarts += 1
            log.warning(
                "the writer process died (exit code %s); starting another", self._process.exitcode
            )
        parent_end, child_end = self._context.Pipe()
        self._process = self._context.Process(
            target=writer_main,
            args=(self.settings, child_end, self._logs),
            name="cpm-ingest-writer",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._pipe = parent_end
        try:  # ready once it has imported everything: no batch waits for a cold start
            self._receive()
        except (EOFError, OSError) as error:
            self._discard()
            raise WriteFailed(f"the writer process did not start ({error!r})", True) from error

    def process(self, items: list[Inbound]) -> BatchOutcome:
        self.start()
        try:
            assert self._pipe is not None
            self._pipe.send(pack(items))
            reply = self._receive()
        except (EOFError, OSError) as error:
            self._discard()
            raise WriteFailed(f"the writer process went away ({error!r})", True) from error
        if isinstance(reply, BatchOutcome):
            return reply
        detail, transient, cause = reply
        raise WriteFailed(detail, transient, cause)

    def _receive(self) -> Any:
        """The reply; a batch may take long (a locked database), a dead writer may not."""
        assert self._pipe is not None
        while not self._pipe.poll(0.5):
            if not self._process.is_alive():
                raise EOFError("the writer exited")
        return self._pipe.recv()

    def _discard(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send(None)  # finish: no more batches
        self._discard()
        self._process = None
        self._logs.put(None)
        self._log_thread.join(timeout=5)
        self._logs.close()


Packed = tuple[list[str], list[bytes], list[datetime]]


def pack(items: list[Inbound]) -> Packed:
    """What the writer needs of a batch, as three lists: pickled at a third of the cost
    of a list of `Inbound` objects (the packet ids stay with the parent, which acks)."""
    return (
        [item.topic for item in items],
        [item.payload for item in items],
        [item.received_at for item in items],
    )


def unpack(packed: Packed) -> list[Inbound]:
    topics, payloads, stamps = packed
    return [Inbound(*fields) for fields in zip(topics, payloads, stamps, strict=True)]


def forward_logs(records: Any) -> None:
    """The child's log records, through this process's logging (handlers, levels)."""
    while True:
        try:
            record = records.get()
        except (EOFError, OSError):
            return
        if record is None:
            return
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def writer_main(settings: Settings, pipe: Connection, logs: Any) -> None:
    """The child: batches in, outcomes (or what went wrong) out, until the pipe closes."""
    # Ctrl-C and SIGTERM reach the whole process group; the parent decides when to stop,
    # after the last batch is committed and acknowledged
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    root.setLevel(logging.WARNING)
    logging.getLogger("services").setLevel(logging.DEBUG)  # the parent filters by level

    from services.core.db import make_engine
    from services.core.utils import freeze_startup_objects

    engine = make_engine(settings.database_url)
    processor = BatchProcessor(engine, settings)
    freeze_startup_objects()
    try:
        pipe.send("ready")
        while True:
            try:
                packed = pipe.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if packed is None:
                return
            batch = unpack(packed)
            reply: Any
            try:
                reply = processor.process(batch)
            except Exception as error:
                transient = is_transient(error)
                if not transient:
                    log.exception("unexpected error storing a batch of %d", len(batch))
                cause = type(error).__name__
                reply = (f"{cause}: {error}"[:2000], transient, cause)
            try:
                pipe.send(reply)
            except (EOFError, OSError):
                return
    finally:
        engine.dispose()
