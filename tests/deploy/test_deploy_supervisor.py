"""The supervisor of `cpmon up`, with small Python scripts as children."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

from services.deploy.supervisor import ChildSpec, Supervisor, backoff_delay


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def poll_until(supervisor: Supervisor, condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        supervisor.poll()
        time.sleep(0.02)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 1.0, 30.0) for n in (1, 2, 3, 4, 5, 6, 7)] == [
        1, 2, 4, 8, 16, 30, 30,
    ]  # fmt: skip


def test_a_crashing_child_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    crash = script(tmp_path, "crash", "import sys; sys.exit(3)")
    now = [0.0]
    supervisor = Supervisor(
        [ChildSpec("crashy", crash)], backoff_initial_s=1.0, clock=lambda: now[0]
    )
    supervisor.start()
    child = supervisor.child("crashy")
    delays = []
    for _ in range(3):
        poll_until(supervisor, lambda: child.restart_at is not None)
        assert child.restart_at is not None
        delays.append(child.restart_at - now[0])
        supervisor.poll()  # not due yet: no restart
        assert child.process is None
        now[0] = child.restart_at
        supervisor.poll()
        assert child.process is not None
    assert delays == [1.0, 2.0, 4.0]
    assert child.exit_codes == [3, 3, 3]
    assert child.restarts == 3
    supervisor.shutdown()


def test_a_child_that_ran_long_enough_restarts_after_the_first_delay(tmp_path: Path) -> None:
    crash = script(tmp_path, "crash", "import sys; sys.exit(1)")
    now = [0.0]
    supervisor = Supervisor(
        [ChildSpec("c", crash)], backoff_initial_s=1.0, stable_after_s=30, clock=lambda: now[0]
    )
    supervisor.start()
    child = supervisor.child("c")
    child.failures = 4  # it had crashed repeatedly before...
    now[0] = 100.0  # ...but this run lasted 100 s
    poll_until(supervisor, lambda: child.restart_at is not None)
    assert child.restart_at == 101.0
    supervisor.shutdown()


def test_a_child_that_finished_its_job_is_not_restarted(tmp_path: Path) -> None:
    done = script(tmp_path, "done", "print('done')")
    supervisor = Supervisor([ChildSpec("once", done)], backoff_initial_s=0.01)
    supervisor.start()
    child = supervisor.child("once")
    poll_until(supervisor, lambda: child.finished)
    supervisor.poll()
    assert child.exit_codes == [0]
    assert child.process is None and child.restart_at is None
    supervisor.shutdown()


def test_shutdown_sends_sigterm_tier_by_tier_and_waits(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    ready = tmp_path / "ready"
    body = f"""
        import signal, sys, time, pathlib
        name = sys.argv[1]
        journal = pathlib.Path({str(journal)!r})
        def stop(*_):
            journal.open("a").write(f"{{name}} got SIGTERM\\n")
            time.sleep(0.3)  # finishing an in-flight batch
            journal.open("a").write(f"{{name}} committed\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        pathlib.Path({str(ready)!r} + name).touch()
        while True:
            time.sleep(0.05)
    """
    child = script(tmp_path, "child", body)
    supervisor = Supervisor(
        [
            ChildSpec("broker", [*child, "broker"], tier=0),
            ChildSpec("ingest", [*child, "ingest"], tier=1),
            ChildSpec("simulator", [*child, "simulator"], tier=2),
        ]
    )
    supervisor.start()
    poll_until(supervisor, lambda: all(
        Path(f"{ready}{name}").exists() for name in ("broker", "ingest", "simulator")
    ))  # fmt: skip
    supervisor.shutdown()
    assert journal.read_text().splitlines() == [
        "simulator got SIGTERM", "simulator committed",
        "ingest got SIGTERM", "ingest committed",
        "broker got SIGTERM", "broker committed",
    ]  # fmt: skip
    assert all(c.exit_codes == [0] for c in supervisor.children)


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = script(tmp_path, "stubborn", f"""
        import signal, time, pathlib
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path({str(ready)!r}).touch()
        while True:
            time.sleep(0.05)
    """)  # fmt: skip
    supervisor = Supervisor([ChildSpec("stubborn", stubborn)], stop_timeout_s=0.5)
    supervisor.start()
    poll_until(supervisor, ready.exists)
    supervisor.shutdown()
    assert supervisor.child("stubborn").exit_codes == [-signal.SIGKILL]
