"""How ingest cuts a batch into SQLite statements and writes its values (pure, no
database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from services.core.db import UTCDateTime
from services.ingest import bulk
from services.ingest.bulk import SQLITE_MAX_VARIABLES, sqlite_chunks, sqlite_value


@pytest.mark.parametrize("columns", [1, 5, 25, 200, 2000])
def test_chunks_cover_the_rows_within_sqlites_limit(columns: int) -> None:
    for rows in range(0, 3000, 7):
        sizes = sqlite_chunks(rows, columns)
        assert sum(sizes) == rows
        assert all(size * columns <= SQLITE_MAX_VARIABLES for size in sizes)
        assert sizes == sorted(sizes, reverse=True)


def test_every_batch_size_uses_the_same_few_statements() -> None:
    # SQLite keeps a prepared statement per SQL text: any batch size must map onto a
    # small, fixed set of texts, or the cache fills with statements never used again
    seen = {size for rows in range(1, 10_001) for size in sqlite_chunks(rows, 25)}
    assert seen == {1, 2, 4, 8, 16, 32, 64, 128, 256}


def sqlalchemy_text(value: datetime) -> str:
    """What SQLAlchemy's SQLite DATETIME stores, through UTCDateTime's bind processing."""
    bound = UTCDateTime().process_bind_param(value, sqlite.dialect())  # type: ignore[no-untyped-call]
    processor = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert processor is not None and bound is not None
    text: str = processor(bound)
    return text


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    offset_min=st.integers(-14 * 60, 14 * 60),
)
def test_timestamp_texts_are_sqlalchemys_whatever_the_zone_and_the_memo(
    moment: datetime, offset_min: int
) -> None:
    shifted = moment.astimezone(timezone(timedelta(minutes=offset_min)))
    zero = moment.replace(tzinfo=timezone(timedelta(0)))
    expected = sqlalchemy_text(moment)
    for _ in range(2):  # made, then from the memo
        assert sqlite_value(moment) == expected
        assert sqlite_value(shifted) == expected  # the same instant in another zone
        assert sqlite_value(zero) == expected
    assert sqlite_value(None) is None and sqlite_value(37.5) == 37.5


def test_the_timestamp_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "STAMP_TEXTS_KEPT", 10)
    start = datetime(2026, 12, 2, tzinfo=UTC)
    stamps = [start + timedelta(microseconds=n) for n in range(25)]
    assert [sqlite_value(s) for s in stamps] == [sqlalchemy_text(s) for s in stamps]
    assert len(bulk._stamp_texts) <= 10
