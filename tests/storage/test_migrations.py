"""Migrations: idempotent, safe when several processes start at once, pgvector only if present."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from facerec.config import DatabaseSettings, Settings
from facerec.storage.engine import create_engine
from facerec.storage.migrate import (
    HEAD_REVISION,
    alembic_config,
    database_revision,
    upgrade_database,
)
from facerec.storage.models import NewFace, NewPerson
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.conftest import POSTGRES_URL
from tests.storage.conftest import _drop_schema, _schema_engine
from tests.storage.helpers import L2_SPACE, Backend, vec

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_head_constant_is_alembics_head() -> None:
    """A database at HEAD_REVISION skips Alembic: the constant must follow every new revision."""
    assert HEAD_REVISION == HEAD


async def test_upgrade_is_idempotent(backend: Backend) -> None:
    assert await database_revision(backend.engine) == HEAD
    await upgrade_database(Settings(database_url=backend.url), engine=backend.engine)
    assert [c.name for c in await backend.repo.list_collections()] == ["default"]
    async with backend.engine.connect() as conn:
        has_vectors = await conn.run_sync(lambda sync: inspect(sync).has_table("face_vectors"))
    # PostgreSQL 15 on this machine has no pgvector: the migration must skip, not fail.
    assert has_vectors == (backend.kind == "pgvector")


async def test_sqlite_file_setup(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "g.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}")
    engine = create_engine(settings.db)
    try:
        await upgrade_database(settings, engine=engine)
        assert path.exists()
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
            assert timeout is not None and timeout >= 1000
    finally:
        await engine.dispose()
    # Without an engine, upgrade_database makes (and disposes) its own.
    await upgrade_database(settings)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_concurrent_first_start(kind: str, tmp_path: Path) -> None:
    """Two processes migrating an empty database at once: one migrates, the other waits."""
    schema = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
        engines = [create_engine(DatabaseSettings(url=url)) for _ in range(2)]
    else:
        url = POSTGRES_URL
        first, schema = await _schema_engine(url, "PostgreSQL", "start it")
        engines = [first, create_engine(DatabaseSettings(url=url), search_path=f"{schema},public")]
    try:
        settings = Settings(database_url=url)
        await asyncio.gather(*(upgrade_database(settings, engine=e) for e in engines))
        assert await database_revision(engines[1]) == HEAD
        async with engines[0].connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM collections"))).scalar()
        assert count == 1
    finally:
        for engine in engines:
            await engine.dispose()
        if schema:
            await _drop_schema(url, schema)


@pytest.mark.parametrize(
    "backend", [pytest.param("pgvector", marks=pytest.mark.pgvector)], indirect=True
)
async def test_pgvector_installed_later_is_backfilled(backend: Backend) -> None:
    repo = backend.repo
    person = await repo.create_person(NewPerson(name="early"))
    await repo.add_faces(person.id, [NewFace(space=L2_SPACE.name, embedding=vec(1))])
    async with backend.engine.begin() as conn:
        await conn.execute(text("DROP TABLE face_vectors"))
    await upgrade_database(Settings(database_url=backend.url), engine=backend.engine)
    assert await backend.scalar("SELECT count(*) FROM face_vectors") == 1
    fresh = SqlGalleryRepository(backend.engine)
    hits = await PgVectorSearcher(backend.engine).search("default", L2_SPACE.name, vec(1))
    assert hits[0].person_id == person.id and hits[0].distance < 1e-5
    await fresh.delete_person(person.id)
    assert await backend.scalar("SELECT count(*) FROM face_vectors") == 0
