"""Run child processes, restart the ones that crash (with backoff), stop them cleanly.

Children run in their own session, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops them in order: SIGTERM to the last tier first (the
simulator and services), wait for them, then the earlier tiers (the broker), so ingest
can commit and acknowledge its in-flight batch while the broker is still there.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("services.deploy.supervisor")

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the child, before exec: own session, and die with the supervisor (Linux)."""
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: children outlive a killed supervisor
        pass


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    tier: int = 1  # stopped in descending tier order; the broker is tier 0
    restart_on_success: bool = False  # a child that exits 0 has finished its job


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # consecutive crashes, reset once it has run `stable_after_s`
    restart_at: float | None = None
    restarts: int = 0
    started: bool = False
    finished: bool = False
    exit_codes: list[int] = field(default_factory=list)


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """1, 2, 4, ... seconds after consecutive crashes, capped."""
    return float(min(max_s, initial_s * 2 ** max(0, failures - 1)))


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 30.0,
        stop_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.stop_timeout_s = stop_timeout_s
        self.clock = clock
        self.stopping = threading.Event()

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.spec.name == name)

    def _spawn(self, child: Child) -> None:
        env = None if child.spec.env is None else dict(child.spec.env)
        child.process = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            preexec_fn=_child_setup,
        )
        child.started = True
        child.started_at = self.clock()
        child.restart_at = None
        log.info("started %s (pid %d)", child.spec.name, child.process.pid)

    def start(self, tier: int | None = None) -> None:
        """Start the children not started yet (only those of `tier`, if given)."""
        for child in self.children:
            if not child.started and tier in (None, child.spec.tier):
                self._spawn(child)

    def poll(self) -> None:
        """Notice exits and start due restarts; call it every fraction of a second."""
        now = self.clock()
        for child in self.children:
            if child.finished or self.stopping.is_set():
                continue
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            child.exit_codes.append(code)
            child.process = None
            if code == 0 and not child.spec.restart_on_success:
                log.info("%s finished", child.spec.name)
                child.finished = True
                continue
            ran_for = now - child.started_at
            child.failures = 1 if ran_for >= self.stable_after_s else child.failures + 1
            delay = backoff_delay(child.failures, self.backoff_initial_s, self.backoff_max_s)
            child.restart_at = now + delay
            log.warning(
                "%s exited with status %d after %.1f s; restarting in %.0f s",
                child.spec.name, code, ran_for, delay,
            )  # fmt: skip

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        """Start what is not started yet, supervise until `stop` is set, stop everything."""
        self.start()
        try:
            while not stop.wait(interval_s):
                self.poll()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """SIGTERM tier by tier, highest first; SIGKILL what outlives the timeout."""
        self.stopping.set()
        for tier in sorted({child.spec.tier for child in self.children}, reverse=True):
            running = [
                child
                for child in self.children
                if child.spec.tier == tier and child.process is not None
            ]
            for child in running:
                assert child.process is not None
                if child.process.poll() is None:
                    log.info("stopping %s", child.spec.name)
                    child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            for child in running:
                assert child.process is not None
                try:
                    code = child.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.error("%s did not stop in %.0f s: killed", child.spec.name,
                              self.stop_timeout_s)  # fmt: skip
                    child.process.kill()
                    code = child.process.wait()
                child.exit_codes.append(code)
                child.process = None
