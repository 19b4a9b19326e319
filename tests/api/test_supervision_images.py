"""Signature and photo uploads: only sane PNGs pass (hostile input)."""

import struct

import pytest

from services.api.supervision_images import ImageRejected, check_png
from tests.support.supervision import chunk, make_png

LIMIT = 512 * 1024


def test_a_drawn_signature_passes() -> None:
    png = make_png(300, 120)
    got = check_png(png, LIMIT)
    assert (got.width, got.height, got.size) == (300, 120, len(png))
    assert len(got.sha256) == 64


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GIF89a" + b"\x00" * 100, "not a PNG"),
        (make_png()[:-20], "truncated|past the end|no end"),
        (make_png()[:40] + b"\xff" + make_png()[41:], "CRC"),
        (make_png(8, 8), "pixels a side"),
        (make_png(5000, 16, raw=b"\x00" * 16), "pixels a side"),
        (make_png(120, 60, raw=b"\x00" * 100), "does not match"),
        (make_png(ihdr=struct.pack(">IIBBBBB", 120, 60, 3, 0, 0, 0, 0)), "bit depth"),
        (make_png() + chunk(b"tEXt", b"x"), "after the PNG end"),
        (make_png()[:33] + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b""), "corrupt"),
    ],
)
def test_hostile_images_are_rejected(data: bytes, why: str) -> None:
    with pytest.raises(ImageRejected, match=why):
        check_png(data, LIMIT)


def test_decompression_bomb_stops_at_the_promised_size() -> None:
    # header: 16x16 greyscale; data: 50 MB of zeros squeezed into ~50 kB
    bomb = make_png(16, 16, raw=b"\x00" * 50_000_000)
    assert len(bomb) < LIMIT
    with pytest.raises(ImageRejected, match="larger than its header"):
        check_png(bomb, LIMIT)


def test_size_limit() -> None:
    with pytest.raises(ImageRejected, match="larger than 100 bytes"):
        check_png(make_png(), 100)
