"""Play an inspection plan through the real HTTP API and return its manifest.

The enterprises arrive as one CSV import (with their resumption days); each inspection
is filed as a draft with its marks and signed with a drawn-looking PNG signature, in
time order. The client is any `httpx.Client` whose base URL is the API's origin and
whose headers carry an officer (or admin) key.
"""

from __future__ import annotations

import base64
import csv
import io
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from .inspections import InspectionPlan

API = "/api/v1/supervision"


def signature_png(width: int = 240, height: int = 80, wiggle: int = 0) -> bytes:
    """A greyscale PNG with a wavy stroke: what a signature canvas sends."""
    rows = []
    for y in range(height):
        row = bytearray(b"\xff" * width)
        for x in range(width):
            if abs(y - (height // 2 + ((x + wiggle) // 12 % 5 - 2) * 6)) < 2:
                row[x] = 0
        rows.append(b"\x00" + bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def enterprises_csv(plan: InspectionPlan) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "credit_code", "site_id", "resumed_on"])
    for e in plan.enterprises:
        writer.writerow([e.name, e.credit_code, e.site_id, e.resumed_on or ""])
    return out.getvalue()


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json()


def run_inspections(
    client: httpx.Client,
    plan: InspectionPlan,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    report = _ok(
        client.post(
            f"{API}/enterprises/import",
            content=enterprises_csv(plan).encode(),
            headers={"Content-Type": "text/csv"},
        )
    )
    if not report["committed"]:
        raise RuntimeError(f"enterprise import refused: {report['errors'][:3]}")
    ids = {e["credit_code"]: e["id"] for e in _ok(client.get(f"{API}/enterprises"))}
    by_key = {e.key: ids[e.credit_code] for e in plan.enterprises}
    signature = base64.b64encode(signature_png()).decode()
    for n, step in enumerate(plan.steps, start=1):
        body: dict[str, Any] = {
            "kind": step.kind,
            "team_id": step.team_id,
            "inspected_at": step.at.isoformat(),
            "inspector": f"{step.team_id} 督查员",
            "marks": list(step.marks),
        }
        if step.enterprise_key is not None:
            body["enterprise_id"] = by_key[step.enterprise_key]
        else:
            body["site_id"] = step.site_id
        draft = _ok(client.post(f"{API}/inspections", json=body))
        sign = {"signer_name": "物业负责人", "signature_png": signature}
        _ok(client.post(f"{API}/inspections/{draft['id']}/sign", json=sign))
        if progress is not None:
            progress(n, len(plan.steps))
    manifest = dict(plan.manifest)
    now = clock()
    deadlines = manifest["findings"]["open_deadlines"]
    manifest["findings"] = {
        **manifest["findings"],
        "overdue": sum(datetime.fromisoformat(d) < now for d in deadlines),
    }
    manifest["run_at"] = now.isoformat()
    return manifest
