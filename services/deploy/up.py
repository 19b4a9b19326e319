"""`cpmon up`: the whole system on one machine, as supervised child processes.

Order: schema, demo registry (if asked and empty), broker (the configured one, or one
started here), then ingest, alerts, the API and, with `--simulate`, the simulator.
Ctrl-C or SIGTERM stops the services first (ingest commits and acknowledges its
in-flight batch), then the broker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.core.settings import Settings
from services.deploy.broker import BrokerPlan, plan_broker
from services.deploy.mosquitto import port_answers
from services.deploy.supervisor import ChildSpec, Supervisor

log = logging.getLogger("services.deploy.up")

DEMO_SEED = 2020  # the simulator's default community seed: same people, same passes


@dataclass(frozen=True)
class UpOptions:
    demo: bool = False
    simulate: bool = False
    host: str | None = None
    port: int | None = None
    people: int = 69_000
    state_dir: Path = Path("var")
    use_mosquitto: bool = True
    simulate_args: Sequence[str] = ()


def prepare_database(settings: Settings, options: UpOptions) -> str:
    """Migrate, and load the demo community into an empty registry. Says what it did."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin otherwise
    from services.core.db import get_engine
    from services.core.migrate import upgrade
    from services.core.seed import load_demo, registry_is_empty

    settings.ensure_var_dir()
    upgrade(settings.database_url)
    engine = get_engine(settings.database_url)
    if not options.demo:
        return "schema up to date"
    if not registry_is_empty(engine):
        return "schema up to date; registry already loaded"
    from services.core.demo import generate_community

    community = generate_community(seed=DEMO_SEED, people=options.people)
    secret = settings.id_hash_secret.get_secret_value()
    counts = load_demo(engine, community, secret, commissioned_at=datetime.now(UTC))
    return "loaded the demo community: " + ", ".join(f"{n} {k}" for k, n in counts.items())


DEMO_KEY_NAME = "demo (cpmon up)"
DEMO_KEY_FILE = "demo-key"  # in the state directory (var/), readable by its owner only


def demo_key(settings: Settings, state_dir: Path) -> str:
    """The admin key to sign in to the demo dashboard with: the same at every start (kept
    in `state_dir`, so a restart does not sign the browser out), a new one only when the
    kept one is gone or was revoked (earlier demo keys are then revoked)."""
    from sqlmodel import Session, select

    from services.api.auth import create_key_in, find_key
    from services.core.db import get_engine, session_scope, utcnow
    from services.core.enums import Role
    from services.core.models.auth import ApiKey

    engine = get_engine(settings.database_url)
    path = state_dir / DEMO_KEY_FILE
    if path.exists():
        kept = path.read_text(encoding="utf-8").strip()
        with Session(engine) as session:
            if kept and find_key(session, kept) is not None:
                return kept
    with session_scope(engine) as session:
        for old in session.exec(select(ApiKey).where(ApiKey.name == DEMO_KEY_NAME)):
            if old.revoked_at is None:
                old.revoked_at = utcnow()
                session.add(old)
    key = create_key_in(engine, Role.ADMIN, DEMO_KEY_NAME)[1]
    state_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key + "\n", encoding="utf-8")
    return key


DEMO_ENV = Path(".env")
DEMO_ENV_TEXT = """\
# Written by `cpmon up --demo`: other cpmon commands in this directory (cpmon apikey,
# cpmon registry import ...) then use the demo's built-in secret and database too.
# Never for production: delete this file and set a secret of your own (see README).
CPM_DEMO_MODE=true
"""


def demo_environment(env_file: Path = DEMO_ENV) -> str:
    """Make the demo's settings those of every `cpmon` run in this directory: write a
    `.env` with CPM_DEMO_MODE=true if there is none. Says what it did."""
    if not env_file.exists():
        env_file.write_text(DEMO_ENV_TEXT, encoding="utf-8")
        return f"wrote {env_file} (CPM_DEMO_MODE=true) so `.venv/bin/cpmon ...` works here"
    text = env_file.read_text(encoding="utf-8", errors="replace")
    if "CPM_DEMO_MODE=true" in text.replace(" ", ""):
        return f"{env_file} sets CPM_DEMO_MODE=true: `.venv/bin/cpmon ...` works here"
    return (
        f"{env_file} exists without CPM_DEMO_MODE=true: run other cpmon commands here "
        "with CPM_DEMO_MODE=true (the demo uses the built-in demo secret)"
    )


def api_port_free(host: str, port: int) -> bool:
    """Whether the API could listen there (as uvicorn binds: SO_REUSEADDR, so a port
    with connections still closing after a restart counts as free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def api_answers(address: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/healthz", timeout=timeout_s) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_for_api(
    supervisor: Supervisor, address: str, stop: threading.Event, timeout_s: float = 120
) -> bool:
    """Supervise until the API answers (True), or stop is asked or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        supervisor.poll()
        if api_answers(address):
            return True
        stop.wait(0.3)
    return False


def service_specs(
    options: UpOptions, env: Mapping[str, str], cpmon: Sequence[str]
) -> list[ChildSpec]:
    """The service children; `cpmon` is how to run the console script."""
    api_args = []
    if options.host:
        api_args += ["--host", options.host]
    if options.port:
        api_args += ["--port", str(options.port)]
    specs = [
        ChildSpec("ingest", [*cpmon, "ingest"], env),
        ChildSpec("alerts", [*cpmon, "alerts"], env),
        ChildSpec("api", [*cpmon, "api", *api_args], env),
    ]
    if options.simulate:
        # Live: simulated time runs with the wall clock, on the same community. No
        # --start: the simulator takes "now" when it starts playing, not when this
        # process planned it (its clock ran ~10 s behind, the community's load time).
        simulate = [
            *cpmon, "simulate", "--community-seed", str(DEMO_SEED), "--people",
            str(options.people), "--speed", "1", "--duration", "30d",
            *options.simulate_args,
        ]  # fmt: skip
        specs.append(ChildSpec("simulator", simulate, env, tier=2))
    return specs


def child_environment(settings: Settings, options: UpOptions, broker: BrokerPlan) -> dict[str, str]:
    env = dict(os.environ)
    env.update(broker.env)
    if options.demo:
        env["CPM_DEMO_MODE"] = "true"
    # Children must use the very database this process migrated and seeded.
    env["CPM_DATABASE_URL"] = settings.database_url
    return env


def api_address(settings: Settings, options: UpOptions) -> str:
    host = options.host or settings.api_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{options.port or settings.api_port}"


def wait_for_broker(supervisor: Supervisor, broker: BrokerPlan, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_answers(broker.host, broker.port, 0.3):
        supervisor.poll()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker did not come up on {broker.host}:{broker.port}")
        time.sleep(0.1)


def run_up(settings: Settings, options: UpOptions, cpmon: Sequence[str] | None = None) -> int:
    cpmon = list(cpmon or [sys.executable, "-m", "services.cli"])
    host = options.host or settings.api_host
    port = options.port or settings.api_port
    if not api_port_free(host, port):
        print(
            f"cpmon up: port {port} on {host} is in use (another `cpmon up` or another "
            "server?); stop it, or choose another port with --port",
            file=sys.stderr,
        )
        return 2
    print(f"cpmon up: {prepare_database(settings, options)}", flush=True)
    if options.demo:
        print(f"cpmon up: {demo_environment()}", flush=True)
    broker = plan_broker(settings, options.state_dir, use_mosquitto=options.use_mosquitto)
    env = child_environment(settings, options, broker)
    specs = ([broker.process] if broker.process else []) + service_specs(options, env, cpmon)
    supervisor = Supervisor(specs)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    supervisor.start(tier=0)
    try:
        wait_for_broker(supervisor, broker)
    except RuntimeError as exc:
        supervisor.shutdown()
        print(f"cpmon up: {exc}", file=sys.stderr)
        return 1
    print(f"cpmon up: broker: {broker.describe()}", flush=True)
    supervisor.start()
    address = api_address(settings, options)
    if not wait_for_api(supervisor, address, stop):
        supervisor.shutdown()
        if stop.is_set():
            print("cpmon up: stopped", flush=True)
            return 0
        print(f"cpmon up: the API did not answer at {address}; see its log above", file=sys.stderr)
        return 1
    print(f"cpmon up: API on {address} (docs {address}/docs); dashboard {address}/", flush=True)
    if options.demo:
        key = demo_key(settings, options.state_dir)
        print(f"cpmon up: sign in to the dashboard with the demo key {key}", flush=True)
        print(f"cpmon up: (kept in {options.state_dir / DEMO_KEY_FILE}: the same at every start)")
    print("cpmon up: Ctrl-C stops everything (ingest commits its last batch first)", flush=True)
    supervisor.run(stop)
    print("cpmon up: stopped", flush=True)
    return 0
