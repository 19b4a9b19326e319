"""Fresh, migrated test databases on each engine: SQLite copied from a migrated
template file, PostgreSQL created from a migrated template database."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from services.core.db import dispose_engines

PG_ADMIN_URL = os.environ.get(
    "CPM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATABASES = [
    name.strip() for name in os.environ.get("CPM_TEST_DATABASES", "sqlite,postgres").split(",")
]


def pg_admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@contextmanager
def fresh_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database of `kind` copied from the migrated template; dropped afterwards."""
    if kind == "sqlite":
        path = tmp_path / f"cpm-{uuid.uuid4().hex[:6]}.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    elif kind == "postgres":
        template = request.getfixturevalue("pg_template")
        name = f"cpm_t_{uuid.uuid4().hex[:12]}"
        admin = pg_admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield pg_url(name)
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        raise ValueError(f"unknown test database {kind!r}")
    dispose_engines()
