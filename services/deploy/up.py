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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection

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
    # days of simulated history played through ingest before going live (demo with
    # --simulate, on a freshly loaded registry only); 0: none
    backfill_days: int = 7


def backfill_start(options: UpOptions, fresh: bool, now: datetime) -> datetime | None:
    """When the backfilled history starts (None: no backfill)."""
    if not (options.demo and options.simulate and fresh and options.backfill_days > 0):
        return None
    return now.replace(microsecond=0) - timedelta(days=options.backfill_days)


def prepare_database(
    settings: Settings, options: UpOptions, commissioned_at: datetime | None = None
) -> tuple[str, bool]:
    """Migrate, and load the demo community into an empty registry, its checkpoints in
    service from `commissioned_at` (default now). Says what it did, and whether it
    loaded the registry just now."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin otherwise
    from services.core.db import get_engine
    from services.core.migrate import upgrade
    from services.core.seed import load_demo, registry_is_empty

    settings.ensure_var_dir()
    upgrade(settings.database_url)
    engine = get_engine(settings.database_url)
    if not options.demo:
        return "schema up to date", False
    if not registry_is_empty(engine):
        return "schema up to date; registry already loaded", False
    from services.core.demo import generate_community

    community = generate_community(seed=DEMO_SEED, people=options.people)
    secret = settings.id_hash_secret.get_secret_value()
    in_service = commissioned_at or datetime.now(UTC)
    counts = load_demo(engine, community, secret, commissioned_at=in_service)
    loaded = ", ".join(f"{n} {k}" for k, n in counts.items())
    return f"loaded the demo community: {loaded}", True


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


DEMO_SESSION_EXPIRY_S = 86_400  # on a reused broker: a day after the demo stops
BACKFILL_TIER = 2  # after ingest and the API, before the alerts and the live simulator


def service_specs(
    options: UpOptions,
    env: Mapping[str, str],
    cpmon: Sequence[str],
    backfill_from: datetime | None = None,
) -> list[ChildSpec]:
    """The service children; `cpmon` is how to run the console script. With
    `backfill_from`, a one-off simulator first plays the history from then to now as
    fast as ingest takes it, and the alerts start after it (they do not page anyone
    about the past)."""
    api_args = []
    if options.host:
        api_args += ["--host", options.host]
    if options.port:
        api_args += ["--port", str(options.port)]
    later = BACKFILL_TIER + 1 if backfill_from else 1
    specs = [
        ChildSpec("ingest", [*cpmon, "ingest"], env),
        ChildSpec("alerts", [*cpmon, "alerts"], env, tier=later),
        ChildSpec("api", [*cpmon, "api", *api_args], env),
    ]
    if options.simulate and backfill_from is not None:
        # straight into ingest's batch processor, not through the broker: generated
        # here, the history needs none of its routing or acknowledgements, and storing
        # it in large batches is what makes a week take minutes
        backfill = [
            *cpmon, "simulate", "--community-seed", str(DEMO_SEED), "--people",
            str(options.people), "--speed", "max", "--start",
            backfill_from.isoformat(), "--duration", f"{options.backfill_days}d",
            "--direct-ingest",
            # heartbeats matter live (silence); in the past they would be most of the
            # messages (2 million a week at 30 s) and tell nothing coverage shows
            "--heartbeat", "1h",
        ]  # fmt: skip
        specs.append(ChildSpec("backfill", backfill, env, tier=BACKFILL_TIER))
    if options.simulate:
        # Live: simulated time runs with the wall clock, on the same community. No
        # --start: the simulator takes "now" when it starts playing, not when this
        # process planned it (its clock ran ~10 s behind, the community's load time).
        simulate = [
            *cpmon, "simulate", "--community-seed", str(DEMO_SEED), "--people",
            str(options.people), "--speed", "1", "--duration", "30d",
            *options.simulate_args,
        ]  # fmt: skip
        specs.append(ChildSpec("simulator", simulate, env, tier=later + 1))
    return specs


def child_environment(
    settings: Settings,
    options: UpOptions,
    broker: BrokerPlan,
    backfill_from: datetime | None = None,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(broker.env)
    if options.demo:
        env["CPM_DEMO_MODE"] = "true"
        if broker.kind == "configured" and "CPM_INGEST_SESSION_EXPIRY_S" not in os.environ:
            # a broker that was already there (someone's, on 1883): the demo's ingest
            # session must not stay on it forever once the demo is gone
            env["CPM_INGEST_SESSION_EXPIRY_S"] = str(DEMO_SESSION_EXPIRY_S)
    if backfill_from is not None:
        # ingest files events older than this at their receipt time: the history must
        # keep its own timestamps
        hours = options.backfill_days * 24 + 24
        env["CPM_MAX_EVENT_AGE_H"] = str(max(hours, settings.max_event_age_h))
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


def date_replayed_statuses(conn: Connection, played_from: datetime) -> None:
    """The device statuses of a replayed history, received since `played_from` but
    stamped before it by the (simulated) device clock, dated by that clock."""
    from sqlalchemy import update

    from services.core.tables import status_t

    conn.execute(
        update(status_t)
        .where(status_t.c.ts >= played_from, status_t.c.device_ts < played_from)
        .values(ts=status_t.c.device_ts)
    )


def settle_history(settings: Settings, played_from: datetime) -> int:
    """After the backfill: date its device statuses by the (simulated) device clock, and
    start the alert rules after it. Ingest dates a status by its receipt, because a will
    carries the time the device connected, not when it dropped; the history's statuses
    all arrived during the replay, so they would otherwise all count from now. Nobody
    is to be paged about the past. Returns the passages played."""
    from sqlalchemy import func, select, update

    from services.alerts.event_processor import SOURCES
    from services.alerts.timed_processor import UNSCREENED_WATERMARK
    from services.alerts.watermark import ensure_watermarks
    from services.core.db import get_engine
    from services.core.tables import passage_t, reading_t, watermark_t

    engine = get_engine(settings.database_url)
    ensure_watermarks(engine, [*SOURCES, UNSCREENED_WATERMARK])

    def newest() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                table.name: int(
                    conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
                )
                for table in (passage_t, reading_t)
            }

    # the broker acknowledged every message; ingest may still be storing the last ones
    last, deadline = newest(), time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(3)
        now = newest()
        if now == last:
            break
        last = now
    with engine.begin() as conn:
        date_replayed_statuses(conn, played_from)
        for name, table in (*((n, n) for n in SOURCES), (UNSCREENED_WATERMARK, "passage")):
            conn.execute(
                update(watermark_t).where(watermark_t.c.name == name).values(last_id=last[table])
            )
    return last["passage"]


def wait_for_backfill(supervisor: Supervisor, stop: threading.Event) -> bool:
    """Supervise until the backfill finished (True) or stop is asked. The backfill says
    how far it got itself (simulated time, messages stored, rate, ETA)."""
    (child,) = [c for c in supervisor.children if c.spec.name == "backfill"]
    while not child.finished:
        if stop.wait(0.5):
            return False
        supervisor.poll()
    return True


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
    now = datetime.now(UTC)
    history_from = now - timedelta(days=options.backfill_days)
    said, fresh = prepare_database(settings, options, history_from if options.simulate else now)
    print(f"cpmon up: {said}", flush=True)
    backfill_from = backfill_start(options, fresh, now)
    if options.demo:
        print(f"cpmon up: {demo_environment()}", flush=True)
    broker = plan_broker(settings, options.state_dir, use_mosquitto=options.use_mosquitto)
    env = child_environment(settings, options, broker, backfill_from)
    services = service_specs(options, env, cpmon, backfill_from)
    specs = ([broker.process] if broker.process else []) + services
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
    supervisor.start(tier=1)
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
    if backfill_from is not None:
        print(
            f"cpmon up: playing {options.backfill_days} days of simulated history through "
            f"ingest (from {backfill_from:%Y-%m-%d %H:%M} UTC), then going live ...",
            flush=True,
        )
        played_from = datetime.now(UTC)
        supervisor.start(tier=BACKFILL_TIER)
        if not wait_for_backfill(supervisor, stop):
            supervisor.shutdown()
            print("cpmon up: stopped", flush=True)
            return 0
        played = settle_history(settings, played_from)
        print(f"cpmon up: history played ({played} passages); going live", flush=True)
    supervisor.run(stop)
    print("cpmon up: stopped", flush=True)
    return 0
