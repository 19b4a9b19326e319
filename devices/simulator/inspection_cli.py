"""`cpmon simulate-inspections`: the inspection scenario against a running API."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser(
        "simulate-inspections",
        help="the supervision scenario: enterprises resuming, five teams inspecting",
        description="Drive the real API: import enterprises with their resumption days, "
        "then file and sign inspections (some items ×, rectified on the spot, by a "
        "deadline, or left overdue), and write a manifest of what the API must show. "
        "The API key (officer or admin) is read from the environment variable named "
        "by --key-env, never from the command line.",
    )
    sim.add_argument("--api", default="http://127.0.0.1:8000", help="the API's origin")
    sim.add_argument("--key-env", default="CPM_SIM_API_KEY", help="variable holding the key")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--days", type=int, default=3, help="local days of inspections")
    sim.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first day (default: so the run ends three days ago, every deadline past)",
    )
    sim.add_argument("--enterprises", type=int, default=30)
    sim.add_argument("--manifest", metavar="FILE", help="write the manifest (JSON)")
    sim.set_defaults(func=cmd_simulate_inspections)


def cmd_simulate_inspections(args: argparse.Namespace) -> int:
    import httpx

    from services.core.settings import get_settings

    from .inspection_runner import run_inspections
    from .inspections import plan_inspections

    key = os.environ.get(args.key_env)
    if not key:
        print(f"simulate-inspections: set {args.key_env} to an officer or admin API key")
        return 2
    timezone = get_settings().timezone
    today = datetime.now(ZoneInfo(timezone)).date()
    start = args.start or today - timedelta(days=args.days + 3)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=args.api, headers=headers, timeout=30) as client:
        sites = client.get("/api/v1/sites").json()
        checklists = client.get("/api/v1/supervision/checklists").json()
        items = {c["code"]: [i["code"] for i in c["items"] if i["parent_code"]] for c in checklists}
        plan = plan_inspections(
            sites, items, start, args.days, timezone, args.seed, args.enterprises
        )
        manifest = run_inspections(client, plan)
    text = json.dumps(manifest, ensure_ascii=False, indent=2)
    if args.manifest:
        Path(args.manifest).write_text(text + "\n", encoding="utf-8")
    print(
        f"simulated {manifest['inspections']['signed']} inspections, "
        f"{manifest['enterprises']['resumed']} enterprises resumed, "
        f"{manifest['findings']['open']} findings open"
    )
    return 0
