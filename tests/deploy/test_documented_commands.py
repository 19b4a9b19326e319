"""Every command in README.md and docs/api.md, run as written against a running system.

`cpmon up --demo --simulate` runs in a fresh directory with its default database (what
`scripts/up` does, on free ports), then each documented `cpmon` / `.venv/bin/cpmon` and
`curl` command runs there with only its host, port and `$KEY`-style variables filled
in. The README's "Running the parts yourself" block runs in a second, empty directory.
A command that is not run is listed in SKIPPED with the reason, so a command added to
the docs fails this test until it runs or is explicitly set aside.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.env import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/api.md")
CPMON = f"{sys.executable} -m services.cli"
# the command (after its placeholders) -> why it is not run here
SKIPPED = {
    "scripts/up": "this test runs what it runs: cpmon up --demo --simulate",
    "scripts/test": "the test suite itself",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'": "the test runs in a venv",
    "cpmon ingest &": "running: started by cpmon up",
    "cpmon alerts &": "running: started by cpmon up",
    "cpmon api --port 8000 &": "running: started by cpmon up",
    "cpmon api --host 0.0.0.0 --port 8000": "running: started by cpmon up",
    "cpmon simulate --scenario normal-day --speed 720 --manifest day.json": (
        "a whole day for two minutes: tests/simulator/test_simulator_e2e.py plays it"
    ),
    "cpmon ...": "prose: stands for any cpmon command",
    "cpmon ingest": "prose naming a service that cpmon up runs",
    "cpmon alerts": "prose naming a service that cpmon up runs",
    "cpmon api": "prose naming a service that cpmon up runs",
    "cpmon simulate --rate 10000 --duration 30s": (
        "a 30 s load test: docs/benchmarks.md measures it (bench/)"
    ),
}


def shell_commands(block: str) -> list[str]:
    """A bash block's commands: continuation lines joined, comments dropped, a quoted
    string spanning lines kept whole."""
    commands, current = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        current = f"{current}\n{line}" if current else line
        if current.count("'") % 2:
            continue  # inside a single-quoted string
        command = re.sub(r"\s+#\s.*$", "", current).strip()
        current = ""
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def documented_commands(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    found = [c for block in blocks for c in shell_commands(block)]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for code in re.findall(r"`([^`\n]+)`", prose):
        if code.startswith(("cpmon ", ".venv/bin/cpmon ", "curl ")):
            found.append(code)
    return found


def normalised(command: str) -> str:
    return re.sub(r"\s+", " ", command.replace(".venv/bin/cpmon", "cpmon")).strip()


def is_synopsis(command: str) -> bool:
    """`cpmon apikey revoke ID`: a placeholder in capitals stands for a value."""
    return bool(re.search(r"\s[A-Z]{2,}(\s|$)", command)) and "$" not in command


class System:
    """`cpmon up --demo --simulate` in `directory`, on free ports, default database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPM_")}
        env.update(
            CPM_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
            CPM_API_PORT=str(self.port),
            CPM_TOPIC_PREFIX=f"test/docs{free_port()}/cpm/v1",
            PYTHONPATH=str(ROOT),
        )
        self.env = env
        self.log = directory / "up.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo", "--simulate",
             "--people", "3000", "--backfill-days", "0", "--no-mosquitto"],
            cwd=directory, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while "sign in to the dashboard" not in self.output():
            assert self.process.poll() is None, self.output()[-3000:]
            assert time.monotonic() < deadline, self.output()[-3000:]
            time.sleep(0.5)

    def run(self, command: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.directory, env=self.env, capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    directory = tmp_path / "demo"
    directory.mkdir()
    # the documented imports read people.csv from the current directory
    shutil.copy(ROOT / "docs" / "vendor" / "people.csv", directory / "people.csv")
    running = System(directory)
    yield running
    running.stop()


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_every_documented_command_runs_as_written(system: System, tmp_path: Path) -> None:
    commands = {
        normalised(c): c
        for doc in DOCS
        for c in documented_commands((ROOT / doc).read_text(encoding="utf-8"))
    }
    assert len(commands) >= 15
    # the README's parts-by-hand block, in a directory of its own (a fresh database)
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    steps = [
        "export CPM_ID_HASH_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')",
        "cpmon db upgrade",
        "cpmon seed --demo",
    ]
    assert all(step in commands for step in steps)
    script = " && ".join(
        s.replace("cpmon", CPMON, 1) if s.startswith("cpmon") else s for s in steps
    )
    fresh = {k: v for k, v in system.env.items() if not k.startswith("CPM_")}
    done = subprocess.run(
        ["bash", "-c", script], cwd=by_hand, env=fresh, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded demo community" in done.stdout

    system.wait_ready()
    cpmon = f"cd {system.directory} && {CPMON}"
    admin = last_line(system.run(f"{cpmon} apikey create --role admin --name ops"))
    officer = last_line(system.run(f"{cpmon} apikey create --role officer --name officer"))
    viewer = last_line(system.run(f"{cpmon} apikey create --role viewer --name wall"))
    address = f"127.0.0.1:{system.port}"
    variables = {"$KEY": admin, "$ADMIN": admin, "$OFFICER": officer, "$VIEWER_KEY": viewer}
    ran: list[str] = []
    for command in sorted(commands):
        if command in SKIPPED or command in steps:
            continue
        if is_synopsis(command) and "revoke" not in command:
            continue  # `cpmon apikey list` and friends run below as themselves
        runnable = command
        if "apikey revoke ID" in runnable:
            listed = system.run(f"{CPMON} apikey list")
            duty = [line for line in listed.stdout.splitlines() if "north-gate" in line]
            assert duty, listed.stdout + listed.stderr
            runnable = runnable.replace("ID", duty[0].split()[0].strip("#"))
        for name, value in variables.items():
            runnable = runnable.replace(name, value)
        runnable = runnable.replace("localhost:8000", address)
        if runnable.startswith("cpmon"):
            runnable = runnable.replace("cpmon", CPMON, 1)
        streaming = runnable.startswith("curl -N")
        if runnable.startswith("curl"):
            runnable = "curl -sS -f " + ("--max-time 3 " if streaming else "") + runnable[5:]
        result = system.run(runnable)
        # curl's --max-time ends a stream with 28: it was answering
        expected = (0, 28) if streaming else (0,)
        assert result.returncode in expected, f"{command}\n{result.stdout}\n{result.stderr}"
        if streaming:
            assert "retry:" in result.stdout, result.stdout
        ran.append(command)
    assert not [c for c in SKIPPED if c not in commands], "a skipped command left the docs"
    must_run = (
        "cpmon apikey create --role admin --name ops",
        'curl -H "Authorization: Bearer $KEY" "localhost:8000/api/v1/metrics/coverage?bucket=day"',
        "cpmon registry import people people.csv",
    )
    assert all(c in ran for c in must_run), ran
    # and the dashboard answers where the banner said
    assert f"dashboard http://{address}/" in system.output()
    assert httpx.get(f"http://{address}/docs", timeout=10).status_code == 200
