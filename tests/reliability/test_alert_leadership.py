"""One leader among alert workers on SQLite too: a lock on a file next to the database,
which the kernel lets go when its process dies (on PostgreSQL: the advisory lock).
The processes' side, each alert event published once with two `cpmon alerts` on one
SQLite file, is scenario 8 (test_two_of_each.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine

from services.alerts.leader import Leadership
from tests.support import wait_until

HOLD_LOCK = """
import sys, time
from sqlalchemy import create_engine
from services.alerts.leader import Leadership
leadership = Leadership(create_engine(sys.argv[1]))
print("leads" if leadership.is_leader() else "follows", flush=True)
time.sleep(600)
"""


def test_one_of_two_workers_on_one_sqlite_file_leads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cpm.db'}"
    first, second = Leadership(create_engine(url)), Leadership(create_engine(url))
    assert first.is_leader()
    assert not second.is_leader()
    assert first.is_leader()  # and keeps leading
    first.release()
    assert second.is_leader()
    assert not first.is_leader()
    second.release()


def test_another_sqlite_file_has_its_own_leader(tmp_path: Path) -> None:
    one = Leadership(create_engine(f"sqlite:///{tmp_path / 'one.db'}"))
    other = Leadership(create_engine(f"sqlite:///{tmp_path / 'other.db'}"))
    assert one.is_leader() and other.is_leader()
    memory = Leadership(create_engine("sqlite://"))
    assert memory.is_leader()  # an in-memory database is its process's own
    one.release()
    other.release()


def test_the_lock_goes_with_a_killed_leader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cpm.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "leads"
        standby = Leadership(create_engine(url))
        assert not standby.is_leader()
        holder.kill()  # no clean-up of its own: the kernel drops the lock
        holder.wait(10)
        wait_until(standby.is_leader, timeout=10)
        standby.release()
    finally:
        holder.kill()
        holder.wait(10)
