"""`cpmon up`, `cpmon devices provision`, `cpmon config docs` and `cpmon retention`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from services.core.logs import setup_logging
from services.core.settings import Settings, get_settings
from services.core.tables import checkpoint_t


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up", help="run the whole system on this machine (broker, ingest, alerts, API)"
    )
    up.add_argument("--demo", action="store_true", help="demo mode; load the demo community")
    up.add_argument("--simulate", action="store_true", help="also run the device simulator")
    up.add_argument("--host", default=None, help="API address (default CPM_API_HOST)")
    up.add_argument("--port", type=int, default=None, help="API port (default CPM_API_PORT)")
    up.add_argument("--people", type=int, default=69_000, help="demo population")
    up.add_argument(
        "--backfill-days",
        type=int,
        default=7,
        help="with --demo --simulate on a fresh database: play this many days of simulated "
        "history straight into ingest's batch processor before going live (0: none; "
        "7 days of 69,000 people: ~8 minutes on 2 cores, see README)",
    )
    up.add_argument("--state-dir", type=Path, default=Path("var"), help="local broker state")
    up.add_argument(
        "--no-mosquitto",
        action="store_true",
        help="when no broker answers at CPM_MQTT_URL, start the embedded (amqtt) broker even "
        "if mosquitto is installed (a broker already answering there, e.g. on 1883, is "
        "always reused)",
    )
    up.set_defaults(func=cmd_up)

    devices = subparsers.add_parser("devices", help="device credentials for the broker")
    devices_sub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    prov = devices_sub.add_parser(
        "provision",
        help="write the broker's accounts (dynamic-security.json), an installers' CSV and, "
        "with --tls-hosts, its CA and server certificate",
    )
    prov.add_argument(
        "--checkpoints",
        required=True,
        help="`all` (every checkpoint in the registry) or cp-001,...",
    )
    prov.add_argument("--out", type=Path, required=True, help="directory (created if missing)")
    prov.add_argument("--rotate", default="", help="accounts that get a new password: cp-007,...")
    prov.add_argument(
        "--replicas", type=int, default=2, help="accounts for N ingest and N alerts processes"
    )
    prov.add_argument(
        "--tls-hosts",
        default="",
        help="broker host names or addresses devices connect to (mqtt.example.org,10.0.0.5): "
        "creates OUT/certs/ca.crt (once) and a server certificate for them",
    )
    prov.add_argument(
        "--renew-server-cert", action="store_true", help="a new server certificate, same CA"
    )
    _add_apply(prov)
    prov.set_defaults(func=cmd_provision)

    rev = devices_sub.add_parser(
        "revoke", help="disable accounts (a stolen device); `provision --rotate` restores them"
    )
    rev.add_argument("accounts", help="cp-007,...")
    rev.add_argument("--out", type=Path, required=True, help="the provisioned directory")
    _add_apply(rev)
    rev.set_defaults(func=cmd_revoke)

    config = subparsers.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    docs = config_sub.add_parser("docs", help="write docs/configuration.md from the settings")
    docs.add_argument("--out", type=Path, default=None, help="default: docs/configuration.md")
    docs.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    docs.set_defaults(func=cmd_config_docs)

    retention = subparsers.add_parser(
        "retention", help="delete raw rows older than CPM_RETENTION_DAYS (keeps roll-ups)"
    )
    retention.add_argument("--days", type=int, default=None, help="override CPM_RETENTION_DAYS")
    retention.add_argument(
        "--every-hours", type=float, default=None, help="keep running, once every N hours"
    )
    retention.set_defaults(func=cmd_retention)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def cmd_up(args: argparse.Namespace) -> int:
    from services.deploy.broker import BrokerUnavailable
    from services.deploy.up import UpOptions, run_up

    settings = Settings(demo_mode=True) if args.demo else get_settings()
    setup_logging(settings.log_level, settings.log_json)
    options = UpOptions(
        demo=args.demo,
        simulate=args.simulate,
        host=args.host,
        port=args.port,
        people=args.people,
        state_dir=args.state_dir,
        use_mosquitto=not args.no_mosquitto,
        backfill_days=max(0, args.backfill_days),
    )
    try:
        return run_up(settings, options)
    except BrokerUnavailable as exc:
        print(f"cpmon up: {exc}", file=sys.stderr)
        return 2


def _registry_checkpoints(settings: Settings) -> list[str]:
    from sqlalchemy import select

    from services.core.db import get_engine

    with get_engine(settings.database_url).connect() as conn:
        return list(conn.execute(select(checkpoint_t.c.id)).scalars())


def _add_apply(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply",
        metavar="URL",
        default=None,
        help="also change the running broker at once: mqtt(s)://cpm-admin:PASSWORD@host:port "
        "(default: none; the broker reads the file when it starts)",
    )
    parser.add_argument("--ca-file", default=None, help="CA of the broker, for --apply mqtts://")


def _control(args: argparse.Namespace) -> Any:
    from services.deploy.dynsec import ControlClient

    return ControlClient(args.apply, args.ca_file) if args.apply else contextlib.nullcontext()


def cmd_provision(args: argparse.Namespace) -> int:
    from services.deploy.dynsec import ControlError
    from services.deploy.provision import provision
    from services.deploy.tls import provision_tls

    settings = get_settings()
    if args.checkpoints.strip() == "all":
        checkpoints = _registry_checkpoints(settings)
        if not checkpoints:
            print("cpmon devices provision: the registry has no checkpoints; load it first "
                  "or name them (--checkpoints cp-001,cp-002)", file=sys.stderr)  # fmt: skip
            return 2
    else:
        checkpoints = _split(args.checkpoints)
    try:
        with _control(args) as control:
            result = provision(
                args.out, settings.topic_prefix, checkpoints, _split(args.rotate),
                replicas=args.replicas, control=control,
            )  # fmt: skip
        if args.tls_hosts:
            provision_tls(args.out / "certs", _split(args.tls_hosts), args.renew_server_cert)
    except (ValueError, ControlError) as exc:
        print(f"cpmon devices provision: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {len(result.created)} created, {len(result.rotated)} rotated"
        f"{' (' + ', '.join(result.rotated) + ')' if result.rotated else ''}, "
        f"{len(result.kept)} unchanged{' (applied to the broker)' if args.apply else ''}. "
        "Files: dynamic-security.json (the broker), credentials.csv (installers), "
        f"services.env (docker compose){', certs/ (TLS)' if args.tls_hosts else ''}."
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from services.deploy.dynsec import ControlError
    from services.deploy.provision import revoke

    settings = get_settings()
    try:
        with _control(args) as control:
            result = revoke(args.out, settings.topic_prefix, _split(args.accounts), control)
    except (ValueError, ControlError) as exc:
        print(f"cpmon devices revoke: {exc}", file=sys.stderr)
        return 2
    where = "on the broker and in" if args.apply else "in (restart the broker to apply)"
    print(f"revoked {', '.join(result.revoked)} {where} {args.out}/dynamic-security.json")
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from services.deploy.config_docs import default_path, render_configuration

    path = args.out or default_path()
    text = render_configuration()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `cpmon config docs`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from services.core.db import get_engine
    from services.core.schedule import Schedule
    from services.deploy.retention import run_retention

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    days = settings.retention_days if args.days is None else args.days
    if days < 0:
        print("cpmon retention: --days must be 0 (off) or more", file=sys.stderr)
        return 2
    engine = get_engine(settings.database_url)
    if args.every_hours is None:
        deleted = run_retention(engine, days)
        print(", ".join(f"{n} {table}" for table, n in deleted.items()) or "retention is off")
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    schedule = Schedule()
    schedule.every(
        args.every_hours * 3600,
        lambda: run_retention(engine, days),
        name="retention",
        start_now=True,
    )
    schedule.start()
    try:
        stop.wait()
    finally:
        schedule.shutdown()
    return 0
