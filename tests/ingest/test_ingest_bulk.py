"""How ingest cuts a batch into SQLite statements (pure arithmetic, no database)."""

from __future__ import annotations

import pytest

from services.ingest.bulk import SQLITE_MAX_VARIABLES, sqlite_chunks


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
