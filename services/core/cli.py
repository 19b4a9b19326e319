"""`cpmon db upgrade`, `cpmon db current`, `cpmon seed` and `cpmon privacy purge`."""

from __future__ import annotations

import argparse
from typing import Any

from services.core.db import get_engine
from services.core.logs import setup_logging
from services.core.settings import get_settings


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="create or upgrade the schema")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)
    current = db_sub.add_parser("current", help="print the schema revision")
    current.set_defaults(func=cmd_db_current)

    seed = subparsers.add_parser("seed", help="load a registry into an empty database")
    seed.add_argument("--demo", action="store_true", help="the synthetic demo community")
    seed.add_argument(
        "--checklists",
        action="store_true",
        help="the default supervision checklists and teams (also loaded with --demo)",
    )
    seed.add_argument("--seed", type=int, default=2020, help="random seed of the demo")
    seed.add_argument("--people", type=int, default=69_000, help="demo population")
    seed.add_argument(
        "--if-empty",
        action="store_true",
        help="load nothing, successfully, when the registry already holds sites "
        "(the compose demo seeds on every start)",
    )
    seed.set_defaults(func=cmd_seed)

    privacy = subparsers.add_parser("privacy", help="personal data")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    purge = privacy_sub.add_parser(
        "purge",
        help="end of the emergency: delete all personal data (audited; roll-ups kept)",
    )
    purge.add_argument("--reason", required=True, help="recorded in the audit log")
    purge.add_argument("--yes", action="store_true", help="really delete (no undo)")
    purge.set_defaults(func=cmd_privacy_purge)


def cmd_privacy_purge(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from services.core.purge import purge_personal_data

    if not args.yes:
        print(
            "cpmon privacy purge deletes every person, passage, reading and dead letter "
            "for good; add --yes to do it",
            file=sys.stderr,
        )
        return 2
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    counts = purge_personal_data(
        get_engine(settings.database_url), f"cpmon privacy purge ({getpass.getuser()})", args.reason
    )
    print("purged: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from services.core.migrate import upgrade

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    settings.ensure_var_dir()
    upgrade(settings.database_url, args.revision)
    print(f"schema at {args.revision} on {get_engine(settings.database_url).url!r}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from services.core.migrate import current_revision

    settings = get_settings()
    print(current_revision(get_engine(settings.database_url)) or "(empty database)")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from services.core.demo import generate_community
    from services.core.seed import load_demo, registry_is_empty

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    if not args.demo and not args.checklists:
        print("cpmon seed: say what to load: --demo (CSV import: see `cpmon registry import`)")
        return 2
    engine = get_engine(settings.database_url)
    if args.checklists or args.demo:
        from sqlmodel import Session

        from services.core.supervision_templates import load_default_templates

        with Session(engine) as session:
            print(f"loaded {load_default_templates(session)} default checklists")
        if not args.demo:
            return 0
    if args.if_empty and not registry_is_empty(engine):
        print("cpmon seed: the registry already holds sites; nothing loaded")
        return 0
    community = generate_community(seed=args.seed, people=args.people)
    counts = load_demo(engine, community, settings.id_hash_secret.get_secret_value())
    print("loaded demo community: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0
