from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facerec.auth.store import SqlAuthStore
from facerec.config import Settings
from facerec.storage.engine import create_engine
from facerec.storage.migrate import upgrade_database
from tests.conftest import POSTGRES_URL
from tests.storage.conftest import _drop_schema, _schema_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlAuthStore]:
    """The key and audit store on a migrated database: a SQLite file, or a fresh PostgreSQL
    schema."""
    if request.param == "sqlite":
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
        engine = create_engine(settings.db)
        schema = None
    else:
        settings = Settings(database_url=POSTGRES_URL)
        engine, schema = await _schema_engine(
            POSTGRES_URL, f"PostgreSQL at {POSTGRES_URL}", "start PostgreSQL 15"
        )
    try:
        await upgrade_database(settings, engine=engine)
        yield SqlAuthStore(engine)
    finally:
        await engine.dispose()
        if schema is not None:
            await _drop_schema(POSTGRES_URL, schema)
