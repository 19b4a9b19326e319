"""`cpmon`: one console script, a sub-command per part of the system.

Each part registers its own sub-commands from a `cli` module with a
`register(subparsers)` function, so this file stays a table of contents.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

COMMAND_MODULES = (
    "services.core.cli",  # db upgrade, seed
    "services.ingest.cli",  # ingest
    "services.alerts.cli",  # alerts
    "services.api.cli",  # api, apikey
    "devices.simulator.cli",  # simulate
    "devices.simulator.inspection_cli",  # simulate-inspections
    "services.deploy.cli",  # up, devices provision, config docs
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpmon", description="checkpoint-monitor: temperature-check points, watched."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that part is not installed in this build
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:  # settings refused: say why, no traceback
        print(f"cpmon: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
