"""`cpmon api`, `cpmon apikey create|list|revoke` and `cpmon registry import`."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any, get_args

from services.core.db import get_engine
from services.core.enums import Role
from services.core.logs import setup_logging
from services.core.settings import get_settings


def _cli_actor() -> Any:
    from services.api.auth import Actor

    return Actor(key_id=None, role="cli", name="cpmon", scope=None, request_id=None)


_KEY_IN_QUERY = re.compile(r"(api_key=)[^&\s\"]+")


class RedactKeyFilter(logging.Filter):
    """A key sent in a URL is refused, but uvicorn logs the request line first: keep the
    key out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def register(subparsers: Any) -> None:
    api = subparsers.add_parser("api", help="serve the HTTP API (and the dashboard)")
    api.add_argument("--host", default=None, help="default: CPM_API_HOST (127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="default: CPM_API_PORT (8000)")
    api.set_defaults(func=cmd_api)

    key = subparsers.add_parser("apikey", help="API keys")
    key_sub = key.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="create a key; prints it as the last line")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default=None, help="who or what uses it")
    create.add_argument(
        "--checkpoints", nargs="+", default=None, metavar="CP", help="duty keys: checkpoints"
    )
    create.set_defaults(func=cmd_apikey_create)
    listing = key_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(func=cmd_apikey_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    revoke.set_defaults(func=cmd_apikey_revoke)

    registry = subparsers.add_parser("registry", help="registry bulk import")
    registry_sub = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    imp = registry_sub.add_parser("import", help="import a CSV file")
    from services.core.registry_import import EntityName  # loaded when the parser is built

    imp.add_argument("entity", choices=get_args(EntityName))
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--mode", choices=("all_or_nothing", "skip_bad_rows"), default="all_or_nothing"
    )
    imp.set_defaults(func=cmd_registry_import)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.main import create_app

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    logging.getLogger("uvicorn.access").addFilter(RedactKeyFilter())
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,  # keep our logging set-up
        proxy_headers=True,
    )
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from services.api.auth import create_key_in
    from services.core.models import Checkpoint

    settings = get_settings()
    engine = get_engine(settings.database_url)
    role = Role(args.role)
    if role is Role.DUTY and not args.checkpoints:
        print("cpmon apikey: a duty key needs --checkpoints CP [CP ...]", file=sys.stderr)
        return 2
    if role is not Role.DUTY and args.checkpoints:
        print("cpmon apikey: only duty keys are limited to checkpoints", file=sys.stderr)
        return 2
    from sqlmodel import Session

    with Session(engine) as session:
        unknown = [cp for cp in args.checkpoints or () if session.get(Checkpoint, cp) is None]
    if unknown:
        print(f"cpmon apikey: unknown checkpoints: {', '.join(unknown)}", file=sys.stderr)
        return 2
    name = args.name or f"{role.value} key"
    key_id, key = create_key_in(engine, role, name, args.checkpoints)
    print(f"created API key {key_id} ({role.value}, {name!r}); it is shown once, store it now:")
    print(key)
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from sqlmodel import Session, col, select

    from services.core.models.auth import ApiKey

    engine = get_engine(get_settings().database_url)
    with Session(engine) as session:
        for row in session.exec(select(ApiKey).order_by(col(ApiKey.id))):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            scope = f" checkpoints={row.checkpoint_ids}" if row.checkpoint_ids else ""
            print(f"{row.id}\t{row.role}\t{row.key_prefix}…\t{state}\t{row.name}{scope}")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from services.api.auth import write_audit
    from services.core.db import utcnow
    from services.core.models.auth import ApiKey

    engine = get_engine(get_settings().database_url)
    with Session(engine) as session:
        row = session.get(ApiKey, args.key_id)
        if row is None:
            print(f"cpmon apikey: no key {args.key_id}", file=sys.stderr)
            return 1
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            write_audit(session, _cli_actor(), "api_key.revoke", f"api_key/{row.id}")
            session.commit()
    print(f"API key {args.key_id} revoked")
    return 0


def cmd_registry_import(args: argparse.Namespace) -> int:
    from services.core.registry_import import ImportMode, import_csv

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cpmon registry import: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    from sqlalchemy import Connection, insert

    from services.api.auth import audit_values
    from services.core.tables import audit_t

    def audit(conn: Connection, result: Any) -> None:  # in the import's transaction
        detail = {
            "file": args.file.name,
            "mode": args.mode,
            "rows": result.rows,
            "imported": result.imported,
        }
        conn.execute(
            insert(audit_t),
            audit_values(_cli_actor(), "registry.import", f"registry/{args.entity}", detail),
        )

    result = import_csv(
        get_engine(settings.database_url),
        args.entity,
        text,
        ImportMode(args.mode),
        settings.id_hash_secret.get_secret_value(),
        audit,
    )
    for error in result.errors:
        where = f"line {error.row}" + (f", {error.field}" if error.field else "")
        print(f"{args.file}: {where}: {error.message}", file=sys.stderr)
    print(
        f"{args.entity}: {result.rows} rows, {result.imported} imported, "
        f"{result.skipped} skipped, {'committed' if result.committed else 'NOT committed'}"
    )
    return 0 if result.committed and not (result.errors and args.mode == "all_or_nothing") else 1
