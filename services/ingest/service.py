"""The ingest service: MQTT in, committed rows out, acknowledged only after commit.

Two threads: paho's network thread (receiver.py: a trimmed path for QoS-1 PUBLISH)
puts each message on a bounded hand-off (when it is full the network thread waits, so
the broker holds the rest: backpressure, not an unbounded buffer); the commit thread
takes batches, has the writer (writer.py: a child
process by default) parse and commit them, and only then sends the PUBACKs. A message
that was never acknowledged is redelivered by the broker, and the unique
(checkpoint, msg_id) keys store it once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from services.core.db import get_engine, utcnow
from services.core.mqtt import connect_async, logged, network_alive, new_client
from services.core.protocol import (
    INGEST_GROUP,
    committed_topic,
    device_subscription,
    service_status_topic,
)
from services.core.settings import Settings
from services.ingest.batch import is_transient
from services.ingest.linger import ArrivalRate, linger_s
from services.ingest.parse import Inbound
from services.ingest.receiver import Handoff, IngestClient
from services.ingest.session import SessionLedger, judge
from services.ingest.store import BatchOutcome
from services.ingest.writer import ProcessWriter, ThreadWriter, WriteFailed, Writer

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    acked: int = 0
    db_retries: int = 0
    sessions_lost: int = 0

    def add(self, outcome: BatchOutcome) -> None:
        self.stored += sum(outcome.stored.values())
        self.duplicates += outcome.duplicates
        self.dead_letters += outcome.dead_letters
        self.batches += 1


def subscription_topic(settings: Settings) -> str:
    topic = device_subscription(settings.topic_prefix)
    group = settings.ingest_shared_group
    # shared subscriptions are MQTT v5 (and the embedded 3.1.1 broker has none)
    return f"$share/{group}/{topic}" if group and settings.mqtt_protocol == "5" else topic


def subscription_forms(settings: Settings) -> tuple[str, ...]:
    """Every filter this ingest could have held before: plain, or shared in its group
    (or the default group, when none is set now)."""
    topic = device_subscription(settings.topic_prefix)
    group = settings.ingest_shared_group or INGEST_GROUP
    return (topic, f"$share/{group}/{topic}")


class IngestService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock  # receipt times: a device's clock is judged against it
        self.writer: Writer = (
            ProcessWriter(settings)
            if settings.ingest_writer == "process"
            else ThreadWriter(engine or get_engine(settings.database_url), settings)
        )
        self.stats = IngestStats()
        self.sessions = SessionLedger(
            engine or get_engine(settings.database_url), settings.ingest_client_id
        )
        self.database_ok = True
        self._queue = Handoff(settings.ingest_queue_size)
        self._arrivals = ArrivalRate()
        self._generation = 0
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._busy = False
        self._committer = threading.Thread(
            target=self._commit_loop, name="ingest-commit", daemon=True
        )
        self.client = self._make_client()

    # --- MQTT side --------------------------------------------------------------------
    def _make_client(self) -> IngestClient:
        # manual_ack: the PUBACK goes out only after commit
        client = new_client(
            self.settings,
            self.settings.ingest_client_id,
            persistent=True,
            manual_ack=True,
            client_class=IngestClient,
        )
        assert isinstance(client, IngestClient)
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = logged(self._on_connect)
        client.on_disconnect = logged(self._on_disconnect)
        client.on_message = logged(self._on_message)  # what the QoS-1 path leaves to paho
        client.on_delivery = logged(self._on_delivery)
        client.on_subscribe = logged(self._on_subscribe)
        return client

    @property
    def _status_topic(self) -> str:
        return service_status_topic(self.settings.topic_prefix, self.settings.ingest_client_id)

    @staticmethod
    def _status(state: str) -> str:
        return json.dumps({"state": state, "ts": utcnow().isoformat(), "service": "ingest"})

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        topic = subscription_topic(self.settings)
        log.info(
            "connected to %r (session present: %s); subscribing to %s",
            self.settings.mqtt,
            flags.session_present,
            topic,
        )
        for stale in self._check_session(bool(flags.session_present), topic):
            log.warning("unsubscribing %s, left in the session by an earlier setting", stale)
            client.unsubscribe(stale)
        client.subscribe(topic, qos=1)

    def _check_session(self, session_present: bool, topic: str) -> tuple[str, ...]:
        """Judge the session the broker kept (or not); return subscriptions to drop."""
        now = utcnow()
        try:
            record = self.sessions.load()
            verdict = judge(record, session_present, topic, subscription_forms(self.settings), now)
            self.sessions.connected(topic, self.settings.ingest_session_expiry_s, now, verdict.lost)
        except Exception as error:  # the database may be away: judge next time
            log.warning("cannot check the broker session (%s)", type(error).__name__)
            return ()
        if verdict.lost:
            self.stats.sessions_lost += 1
            log.error(
                "broker_session_lost: the broker has no session for %s although it held "
                "one (last seen %s); messages queued for it while it was away are lost",
                self.settings.ingest_client_id,
                record.last_seen_at.isoformat() if record else "never",
            )
        return verdict.stale_subscriptions

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failures = [rc for rc in reason_codes if isinstance(rc, ReasonCode) and rc.is_failure]
        if failures:
            log.error("subscription refused: %s", failures)
            return
        self._subscribed.set()
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed.clear()
        with contextlib.suppress(Exception):  # best effort: the database may be away too
            self.sessions.left(utcnow())
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._receive(message.topic, bytes(message.payload), message.mid, message.qos)

    def _on_delivery(self, topic: str, payload: bytes, mid: int) -> None:
        self._receive(topic, payload, mid, 1)

    def _receive(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        inbound = Inbound(topic, payload, self.clock(), mid, qos, self._generation)
        if self._queue.put(inbound, self._stopping):  # waits when full: backpressure
            self.stats.received += 1

    # --- commit side ------------------------------------------------------------------
    def _next_batch(self) -> list[Inbound]:
        settings = self.settings
        rate = self._arrivals.sample(self._queue.arrived, time.monotonic())
        linger = linger_s(
            rate, settings.ingest_batch_ms / 1000, settings.ingest_busy_batch_ms / 1000
        )
        return self._queue.take(settings.ingest_batch_size, linger, 0.2)

    def _commit_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            self._busy = True
            try:
                outcome = self._commit(batch)
                if outcome is None:  # stopping while the database is down
                    return
                self._acknowledge(batch)
                self.stats.add(outcome)
                if outcome.newest_ids:
                    self.client.publish(
                        committed_topic(self.settings.topic_prefix),
                        json.dumps(outcome.newest_ids),
                        qos=0,
                    )
            finally:
                self._busy = False

    def _commit(self, batch: list[Inbound]) -> BatchOutcome | None:
        """Commit the batch, retrying while the database is unavailable."""
        backoff = 0.5
        while True:
            try:
                outcome = self.writer.process(batch)
            except Exception as error:
                transient = (
                    error.transient if isinstance(error, WriteFailed) else is_transient(error)
                )
                if not transient:
                    # a bug, not bad data (that is dead-lettered): keep the messages
                    # unacknowledged and retry, rather than lose them or crash
                    log.exception("unexpected error storing a batch of %d", len(batch))
                self.database_ok = False
                self.stats.db_retries += 1
                log.warning(
                    "database unavailable (%s); holding %d message(s) unacknowledged, "
                    "retrying in %.1f s",
                    error.cause if isinstance(error, WriteFailed) else type(error).__name__,
                    len(batch) + len(self._queue),
                    backoff,
                )
                if self._stopping.wait(backoff):
                    return None
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if not self.database_ok:
                log.info("database available again; resuming")
                self.database_ok = True
            return outcome

    def _acknowledge(self, batch: list[Inbound]) -> None:
        generation = self._generation
        # an ack on a newer connection would be for another message: the old one is
        # redelivered instead, and recognised as a duplicate
        current = [item for item in batch if item.qos > 0 and item.generation == generation]
        self.client.ack_many(item.mid for item in current if item.qos == 1)
        for item in current:
            if item.qos != 1:
                self.client.ack(item.mid, item.qos)
        self.stats.acked += len(current)

    # --- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float | None = 15.0) -> None:
        """Connect, subscribe and start writing; with a timeout, return once subscribed.
        Without one, return at once: paho keeps trying to connect in the background."""
        with contextlib.suppress(WriteFailed):
            self.writer.start()  # a writer that fails to start is retried with the first batch
        self._committer.start()
        connect_async(
            self.client,
            self.settings,
            # a persistent session: what devices publish while ingest is away is queued
            session_expiry_s=self.settings.ingest_session_expiry_s,
            # without this the broker keeps only ~20 unacknowledged messages in flight
            receive_maximum=self.settings.ingest_receive_maximum,
        )
        self.client.loop_start()
        if timeout is not None and not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(
                f"could not subscribe at {self.settings.mqtt!r} within {timeout:.0f} s"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, commit and acknowledge what was received, disconnect."""
        self._stopping.set()
        self._committer.join(timeout)
        self.writer.close()
        self.client.publish(self._status_topic, self._status("offline"), qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def running(self) -> bool:
        """Both threads are alive: the commit thread (it never dies of bad input or a
        database outage) and paho's network thread (a deaf process is not running)."""
        return self._committer.is_alive() and network_alive(self.client)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def wait_idle(self, quiet_s: float = 0.3, timeout: float = 30.0) -> bool:
        """True once nothing has arrived or been written for `quiet_s` (for tests)."""
        deadline = time.monotonic() + timeout
        last = (-1, -1)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            current = (self.stats.received, self.stats.batches)
            if current != last or self._busy or len(self._queue):
                last, quiet_since = current, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
            time.sleep(0.05)
        return False
