"""`cpmon simulate`: play every checkpoint of the demo community, or generate load."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from services.core.logs import setup_logging
from services.core.settings import get_settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    from .scenarios import SCENARIOS

    sim = subparsers.add_parser(
        "simulate",
        help="simulate every checkpoint device (or generate load with --rate)",
        description="Play the demo community's 102 checkpoints over MQTT: passages, "
        "temperatures, duty shifts and incidents, and write a manifest of what was sent. "
        "With --rate: load mode, a realistic message mix as fast as asked.",
    )
    sim.add_argument("--scenario", choices=sorted(SCENARIOS), default="normal-day")
    sim.add_argument("--seed", type=int, default=1, help="makes the run repeatable")
    sim.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="simulated seconds per real second, or 'max' (default 1)",
    )
    sim.add_argument(
        "--duration",
        type=_duration,
        default=None,
        help="simulated time, e.g. 2h, 90m, 1d (default 1d; load mode: how "
        "long to publish at --rate)",
    )
    sim.add_argument(
        "--start",
        type=_start,
        default=None,
        help="simulated start (RFC 3339); default: so the run ends now",
    )
    sim.add_argument(
        "--community-seed",
        type=int,
        default=2020,
        help="seed of the demo community (as `cpmon seed --demo --seed`)",
    )
    sim.add_argument(
        "--people",
        type=int,
        default=69_000,
        help="population of the demo community (as `cpmon seed --people`)",
    )
    sim.add_argument(
        "--heartbeat", type=_duration, default=30.0, help="heartbeat interval (protocol: 30 s)"
    )
    sim.add_argument(
        "--rates", default="", help="incident rates, e.g. fever=0.01,duplicate=0.05 (see docs)"
    )
    sim.add_argument("--manifest", metavar="FILE", help="write what was injected (JSON)")
    sim.add_argument(
        "--credentials",
        metavar="FILE",
        help="per-device broker logins: CSV checkpoint_id,username,password "
        "or the credentials.csv of `cpmon devices provision`",
    )
    sim.add_argument("--client-id-prefix", default="sim-", help="device client id prefix")
    sim.add_argument(
        "--max-rate",
        type=float,
        default=None,
        help="cap on messages per second (Mosquitto drops QoS-1 messages a slow "
        "subscriber cannot take beyond max_queued_messages)",
    )
    sim.add_argument(
        "--dry-run",
        action="store_true",
        help="plan the run and write the manifest without connecting",
    )
    sim.add_argument(
        "--direct-ingest",
        action="store_true",
        help="store the messages with ingest's own batch processor in CPM_DATABASE_URL "
        "instead of publishing them (a history played as fast as it can be stored: the "
        "same rows as through the broker, without it)",
    )
    load = sim.add_argument_group("load mode")
    load.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="messages per second, or 'max': publish a realistic mix",
    )
    load.add_argument("--count", type=int, default=None, help="messages to publish")
    load.add_argument("--connections", type=int, default=2)
    load.add_argument("--qos", type=int, choices=(0, 1), default=1)
    sim.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    from services.core.demo import generate_community

    community = generate_community(seed=args.community_seed, people=args.people)
    if args.rate is not None or args.count is not None:
        return _load(args, settings, community)
    return _simulate(args, settings, community)


def _simulate(args: argparse.Namespace, settings: Any, community: Any) -> int:
    from .manifest import write_manifest
    from .network import NetworkError, read_credentials
    from .runner import Simulation
    from .scenarios import scenario_params

    try:
        params = scenario_params(
            args.scenario,
            seed=args.seed,
            start=args.start,
            duration_s=args.duration or 86_400.0,
            speed=args.speed,
            heartbeat_s=args.heartbeat,
            fever_threshold_c=settings.fever_threshold_c,
            timezone=settings.timezone,
        )
        params = _with_rates(params, args.rates)
        credentials = read_credentials(args.credentials) if args.credentials else None
    except (ValueError, OSError) as exc:
        print(f"cpmon simulate: {exc}", file=sys.stderr)
        return 2
    simulation = Simulation(
        params,
        community,
        settings=settings,
        credentials=credentials,
        client_id_template=args.client_id_prefix + "{checkpoint_id}",
        max_rate=args.max_rate,
    )
    try:
        if args.direct_ingest and not args.dry_run:
            manifest = _direct(simulation, settings)
        else:
            manifest = simulation.dry_run() if args.dry_run else simulation.run()
    except NetworkError as exc:
        print(f"cpmon simulate: {exc}", file=sys.stderr)
        return 1
    if args.manifest:
        write_manifest(manifest, args.manifest)
    totals = manifest["totals"]
    print(
        f"{'planned' if args.dry_run else 'simulated'} {params.scenario} "
        f"{manifest['start']} .. {manifest['end']}: "
        f"{totals['messages_published']:,} messages, {totals['passages_total']:,} passages, "
        f"{totals['fevers']} fevers, {sum(totals['incidents'].values()):,} incidents"
        + (f"; manifest in {args.manifest}" if args.manifest else "")
    )
    return 0


def _direct(simulation: Any, settings: Any) -> dict[str, Any]:
    from .direct import IngestWriterProcess, ProgressLog, play_direct

    plan = simulation.plan
    progress = ProgressLog(plan.start, plan.end, lambda line: print(line, flush=True))
    writer = IngestWriterProcess(settings)
    try:
        return play_direct(simulation, writer, on_batch=progress)
    finally:
        writer.close()


def _load(args: argparse.Namespace, settings: Any, community: Any) -> int:
    from .load import message_stream, run_load
    from .network import NetworkError

    rate = None if args.rate == 0 else args.rate
    count = args.count
    if count is None:
        if rate is None or args.duration is None:
            print(
                "cpmon simulate: load mode needs --count, or --rate N with --duration",
                file=sys.stderr,
            )
            return 2
        count = int(rate * args.duration)
    print(f"encoding {count:,} messages...", file=sys.stderr)
    stream = message_stream(
        community, settings.topic_prefix, count, seed=args.seed, timezone=settings.timezone
    )
    tty = sys.stderr.isatty()

    def progress(sent: int, seconds: float) -> None:
        print(f"\r{sent:,} sent, {sent / seconds:,.0f} msg/s", end="", file=sys.stderr)

    try:
        report = run_load(
            settings.mqtt_url,
            settings.topic_prefix,
            rate=rate,
            stream=stream,
            qos=args.qos,
            connections=args.connections,
            ca_file=settings.mqtt_ca_file,
            on_progress=progress if tty else None,
        )
    except NetworkError as exc:
        print(f"cpmon simulate: {exc}", file=sys.stderr)
        return 1
    if tty:
        print(file=sys.stderr)
    print(report)
    return 0 if report.acknowledged == report.sent else 1


def _with_rates(params: Any, text: str) -> Any:
    from dataclasses import replace

    return replace(params, rates=params.rates.with_overrides(text)) if text else params


def _speed(text: str) -> float:
    if text.lower() in ("max", "0"):
        return 0.0
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be positive, or 'max'")
    return value


def _rate(text: str) -> float:
    return 0.0 if text.lower() == "max" else _speed(text)


def _duration(text: str) -> float:
    from .params import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
