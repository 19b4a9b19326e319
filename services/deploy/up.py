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
import sys
import threading
import time
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


def demo_key(settings: Settings) -> str:
    """A fresh admin key to sign in to the demo dashboard with. Keys are stored hashed and
    cannot be shown again, so each start issues a new one and revokes the previous."""
    from sqlmodel import select

    from services.api.auth import create_key_in
    from services.core.db import get_engine, session_scope, utcnow
    from services.core.enums import Role
    from services.core.models.auth import ApiKey

    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:
        for old in session.exec(select(ApiKey).where(ApiKey.name == DEMO_KEY_NAME)):
            if old.revoked_at is None:
                old.revoked_at = utcnow()
                session.add(old)
    return create_key_in(engine, Role.ADMIN, DEMO_KEY_NAME)[1]


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
        # Live: simulated time runs with the wall clock from now, on the same community.
        start = datetime.now(UTC).isoformat(timespec="seconds")
        simulate = [
            *cpmon, "simulate", "--community-seed", str(DEMO_SEED), "--people",
            str(options.people), "--speed", "1", "--start", start, "--duration", "30d",
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
    print(f"cpmon up: {prepare_database(settings, options)}", flush=True)
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
    address = api_address(settings, options)
    print(f"cpmon up: API on {address} (docs {address}/docs); dashboard {address}/", flush=True)
    if options.demo:
        print(f"cpmon up: sign in to the dashboard with the demo key {demo_key(settings)}")
    print("cpmon up: Ctrl-C stops everything (ingest commits its last batch first)", flush=True)
    supervisor.run(stop)
    print("cpmon up: stopped", flush=True)
    return 0
