"""PNG builders and valid credit codes for the supervision tests."""

from __future__ import annotations

import struct
import zlib

from services.core.supervision_rules import credit_check_char


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(
    width: int = 120, height: int = 60, *, raw: bytes | None = None, ihdr: bytes | None = None
) -> bytes:
    """A greyscale 8-bit PNG (a stroke across the middle), or one with the given raw
    (filtered) image data or IHDR body, for hostile-input tests."""
    if raw is None:
        rows = []
        for y in range(height):
            row = bytes(0 if abs(y - height // 2) < 2 else 255 for _ in range(width))
            rows.append(b"\x00" + row)
        raw = b"".join(rows)
    header = ihdr if ihdr is not None else struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def credit_code(n: int) -> str:
    """The n-th valid unified social credit code of the tests."""
    body = f"914403005{n:08d}"
    return body + credit_check_char(body)
