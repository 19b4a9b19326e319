"""Validate an uploaded PNG (signature or photo) without trusting a byte of it.

A PNG is accepted only if its chunks are well formed with correct CRCs, IHDR comes
first with sane dimensions and a known colour type and bit depth, and the image data
inflates — at most to the exact size the header promises, so a decompression bomb
stops after that many bytes — to exactly that size. No image library is needed.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SIDE = 16
MAX_SIDE = 4096
MAX_PIXELS = 12_000_000
MAX_CHUNKS = 10_000
# colour type -> samples per pixel; allowed bit depths
COLOUR_TYPES: dict[int, tuple[int, frozenset[int]]] = {
    0: (1, frozenset({1, 2, 4, 8, 16})),  # greyscale
    2: (3, frozenset({8, 16})),  # RGB
    3: (1, frozenset({1, 2, 4, 8})),  # palette
    4: (2, frozenset({8, 16})),  # greyscale + alpha
    6: (4, frozenset({8, 16})),  # RGBA
}


class ImageRejected(ValueError):
    """The upload is not an acceptable PNG; the message says why (safe to show)."""


@dataclass(frozen=True, slots=True)
class CheckedPng:
    width: int
    height: int
    size: int
    sha256: str


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos = len(PNG_SIGNATURE)
    out: list[tuple[bytes, bytes]] = []
    while pos < len(data):
        if len(out) >= MAX_CHUNKS:
            raise ImageRejected("too many PNG chunks")
        if pos + 12 > len(data):
            raise ImageRejected("truncated PNG chunk")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            raise ImageRejected("PNG chunk runs past the end")
        body = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + body) != crc:
            raise ImageRejected("PNG chunk CRC mismatch")
        if not kind.isalpha():
            raise ImageRejected("bad PNG chunk type")
        out.append((kind, body))
        pos = end + 4
        if kind == b"IEND":
            if pos != len(data):
                raise ImageRejected("data after the PNG end")
            return out
    raise ImageRejected("PNG has no end chunk")


def _expected_size(width: int, height: int, colour: int, depth: int, interlace: int) -> int:
    samples, _ = COLOUR_TYPES[colour]

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * samples * depth + 7) // 8)

    if interlace == 0:
        return rows(width, height)
    passes = (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    )
    total = 0
    for x0, y0, dx, dy in passes:
        total += rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
    return total


def check_png(data: bytes, max_bytes: int) -> CheckedPng:
    """The dimensions of `data` if it is an acceptable PNG; raises ImageRejected."""
    if len(data) > max_bytes:
        raise ImageRejected(f"image larger than {max_bytes} bytes")
    if not data.startswith(PNG_SIGNATURE):
        raise ImageRejected("not a PNG image")
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ImageRejected("PNG must start with a 13-byte IHDR")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ImageRejected(f"image must be {MIN_SIDE}-{MAX_SIDE} pixels a side")
    if width * height > MAX_PIXELS:
        raise ImageRejected("image has too many pixels")
    if colour not in COLOUR_TYPES or depth not in COLOUR_TYPES[colour][1]:
        raise ImageRejected("unsupported PNG colour type or bit depth")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ImageRejected("unsupported PNG compression, filter or interlace method")
    if colour == 3 and not any(kind == b"PLTE" for kind, _ in chunks):
        raise ImageRejected("palette PNG without a palette")
    expected = _expected_size(width, height, colour, depth, interlace)
    inflater = zlib.decompressobj()
    produced = 0
    try:
        for kind, body in chunks:
            if kind != b"IDAT":
                continue
            produced += len(inflater.decompress(body, expected - produced + 1))
            if produced > expected or inflater.unconsumed_tail:
                raise ImageRejected("PNG image data is larger than its header says")
        produced += len(inflater.flush())
    except zlib.error as exc:
        raise ImageRejected("PNG image data is corrupt") from exc
    if produced != expected or not inflater.eof:
        raise ImageRejected("PNG image data does not match its header")
    return CheckedPng(width, height, len(data), hashlib.sha256(data).hexdigest())
