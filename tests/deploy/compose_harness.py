"""The production compose stack, run for real by tests/deploy/test_compose.py: dockerd
(started if this process has to), the images of scripts/images, `docker-compose` on
the project's docker-compose.yml with a throw-away project directory (.env and
mosquitto/secrets) and project name, so a developer's own stack is never touched."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port

ROOT = Path(__file__).parents[2]
PROJECT = "cpmcomposetest"
APP_UID, MOSQUITTO_UID = 10001, 1883
LOCAL_IMAGES = {
    "CPM_APP_IMAGE": "checkpoint-monitor:local",
    "CPM_MOSQUITTO_IMAGE": "checkpoint-monitor-mosquitto:local",
    "CPM_POSTGRES_IMAGE": "checkpoint-monitor-postgres:local",
}
ONE_SHOT = ("migrate", "seed")


class ComposeError(AssertionError):
    """A step of the compose test failed; the message says which and shows the logs."""


def run(cmd: list[str], timeout: float = 600, check: bool = True, **kw: Any) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        raise ComposeError(f"{' '.join(cmd)}: no answer within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        raise ComposeError(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return done.stdout


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise ComposeError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Docker:
    """dockerd: used if running, else started here (and stopped by `stop`)."""

    started: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @staticmethod
    def running() -> bool:
        return (
            shutil.which("docker") is not None
            and subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
        )

    def ensure(self, log: Path) -> None:
        if self.running():
            return
        missing = [b for b in ("docker", "dockerd", "docker-compose") if not shutil.which(b)]
        if missing:
            raise ComposeError(
                f"the compose test needs {', '.join(missing)}: apt-get install docker.io "
                "docker-compose debootstrap (scripts/test does it), or skip it for a quick "
                "run with CPM_COMPOSE_TEST=0"
            )
        if os.geteuid() != 0:
            raise ComposeError("dockerd is not running and only root can start it")
        self.log = log
        with log.open("ab") as out:
            self.started = subprocess.Popen(["dockerd"], stdout=out, stderr=out)
        try:
            wait_for("dockerd to answer `docker info`", self.running, timeout=90)
        except ComposeError as exc:
            raise ComposeError(f"{exc}\n{log.read_text()[-3000:]}") from exc

    def stop(self) -> None:
        if self.started is not None:
            self.started.terminate()
            try:
                self.started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.started.kill()


@dataclass
class Stack:
    """One compose project in `directory`: .env, mosquitto/secrets, the real compose file."""

    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0

    @classmethod
    def prepare(cls, directory: Path, cpmon: Path, checkpoints: list[str]) -> Stack:
        """Provision accounts and certificates and write .env, as docs/operations.md says."""
        secrets_dir = directory / "mosquitto" / "secrets"
        (directory / "mosquitto").mkdir(parents=True)
        shutil.copy(ROOT / "mosquitto" / "mosquitto.conf", directory / "mosquitto")
        run(
            [str(cpmon), "devices", "provision", "--checkpoints", ",".join(checkpoints), "--out",
             str(secrets_dir), "--tls-hosts", "localhost"],
            env={**os.environ, "CPM_ID_HASH_SECRET": secrets.token_hex(32)},
        )  # fmt: skip
        # the broker saves live changes into the directory; the simulator reads the logins
        run(["chown", "-R", f"{MOSQUITTO_UID}:{MOSQUITTO_UID}", str(secrets_dir)])
        run(["chown", f"{APP_UID}", str(secrets_dir / "credentials.csv")])
        api_port, device_port = free_port(), free_port()
        env = {
            "COMPOSE_PROJECT_NAME": PROJECT,
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "CPM_ID_HASH_SECRET": secrets.token_hex(32),
            # published on loopback only: the test talks to nothing else
            "API_PORT": f"127.0.0.1:{api_port}",
            "MQTT_DEVICE_PORT": f"127.0.0.1:{device_port}",
            **LOCAL_IMAGES,
        }
        for line in (secrets_dir / "services.env").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return cls(directory, env, api_port)

    # --- docker-compose ---------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run(
            ["docker-compose", "--project-directory", str(self.directory),
             "-f", str(ROOT / "docker-compose.yml"), "-p", PROJECT, *args],
            timeout=timeout, check=check, cwd=self.directory,
        )  # fmt: skip

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).split()
        if not ids:
            raise ComposeError(f"no container for {service}")
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            run(["docker", "inspect", "-f", "{{json .State}}", self.container(service)])
        )
        return state

    def health(self, service: str) -> str:
        state = self.inspect(service)
        if service in ONE_SHOT:
            return f"exited {state['ExitCode']}" if state["Status"] == "exited" else "running"
        return str(state.get("Health", {}).get("Status", state["Status"]))

    def wait_healthy(self, services: list[str], timeout: float) -> None:
        def all_healthy() -> bool:
            states = {s: self.health(s) for s in services}
            for service, state in states.items():
                if service in ONE_SHOT and state not in ("running", "exited 0"):
                    raise ComposeError(f"{service} {state}:\n{self.logs(service)}")
            return all(state in ("healthy", "exited 0") for state in states.values())

        try:
            wait_for(f"{', '.join(services)} to be healthy", all_healthy, timeout)
        except ComposeError as exc:
            states = {s: self.health(s) for s in services}
            bad = [s for s, state in states.items() if state not in ("healthy", "exited 0")]
            raise ComposeError(
                f"{exc}\nstates: {states}\n" + "\n".join(self.logs(s) for s in bad)
            ) from exc

    def logs(self, service: str, tail: int = 40) -> str:
        out = self.compose("logs", "--no-color", f"--tail={tail}", service, check=False)
        return f"--- {service} ---\n{out}"

    def crash(self, service: str) -> None:
        """SIGKILL the container's first process from the host, as the kernel's OOM
        killer or a fatal bug would: the container exits 137 and its restart policy must
        bring it back (`docker kill` counts as an operator's stop, after which
        `unless-stopped` rightly leaves it down)."""
        pid = self.inspect(service)["Pid"]
        if not pid:
            raise ComposeError(f"{service} is not running")
        os.kill(int(pid), 9)

    def psql(self, sql: str) -> str:
        return self.compose(
            "exec", "-T", "postgres", "psql", "-U", "cpm", "-d", "cpm", "-Atc", sql, timeout=60
        ).strip()

    def count(self, sql: str) -> int:
        return int(self.psql(sql) or 0)

    # --- the API on its published port --------------------------------------------------
    def get(self, path: str, key: str | None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def down(self, volumes: bool = False) -> None:
        self.compose("--profile", "demo", "down", "--remove-orphans", *(["-v"] if volumes else []),
                     timeout=300)  # fmt: skip


def image_report(image: str) -> dict[str, Any]:
    info = json.loads(run(["docker", "image", "inspect", image]))[0]
    return {
        "image": image,
        "size_mb": round(info["Size"] / 1e6, 1),
        "user": info["Config"].get("User") or "",
        "env": info["Config"].get("Env") or [],
    }
