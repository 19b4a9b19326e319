"""The schema is Alembic's: upgrading an empty database gives exactly the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import services.core.models  # noqa: F401
from services.core.migrate import current_revision, head_revision


def test_upgraded_database_matches_models(engine: Engine, database_url: str) -> None:
    assert current_revision(engine) == head_revision(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
