"""Query parameters shared by several routes: time windows, paging, cursors."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime

from services.api.errors import invalid_field

FromParam = Annotated[
    AwareDatetime | None,
    Query(
        alias="from",
        description="Start (inclusive), RFC 3339 with offset",
        examples=["2020-02-01T00:00:00+08:00"],
    ),
]
ToParam = Annotated[
    AwareDatetime | None,
    Query(
        description="End (exclusive), RFC 3339 with offset", examples=["2020-02-02T00:00:00+08:00"]
    ),
]
LimitParam = Annotated[int, Query(ge=1, le=1000, description="Page size")]
CursorParam = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def check_window(
    start: datetime | None, end: datetime | None, max_days: int | None = None
) -> tuple[datetime | None, datetime | None]:
    """Refuse an end before the start, times out of range, and over-long windows."""
    for name, value in (("query.from", start), ("query.to", end)):
        if value is not None and not MIN_TIME <= value <= MAX_TIME:
            raise invalid_field(name, "must lie between 2000-01-01 and 2100-01-01")
    if start is not None and end is not None:
        if end <= start:
            raise invalid_field("query.to", "must be later than `from`")
        if max_days is not None and end - start > timedelta(days=max_days):
            raise invalid_field("query.to", f"the window may span at most {max_days} days")
    return start, end


def encode_cursor(ts: datetime, row_id: int) -> str:
    raw = json.dumps({"ts": ts.astimezone(UTC).isoformat(), "id": row_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (ts, id) a cursor stands for; a 422 naming `query.cursor` when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        ts = datetime.fromisoformat(data["ts"])
        row_id = int(data["id"])
        if ts.tzinfo is None or not MIN_TIME <= ts <= MAX_TIME or not 0 <= row_id < 2**62:
            raise ValueError("bad time")
        return ts, row_id
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise invalid_field("query.cursor", "not a cursor this API returned") from None
