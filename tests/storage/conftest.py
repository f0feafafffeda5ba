"""Storage backends for the contract tests: SQLite file, PostgreSQL 15, PostgreSQL 16 + pgvector.

Every PostgreSQL test gets its own schema (dropped afterwards), so runs are repeatable and
parallel runs against one server never collide. pgvector comes from the ``pgserver`` wheel: a
private PostgreSQL 16 started once per session (as root, pgserver runs it as a ``pgserver``
system user it creates).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.config import DatabaseSettings, Settings
from facerec.storage.engine import create_engine
from facerec.storage.migrate import upgrade_database
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.conftest import POSTGRES_URL, unavailable
from tests.storage.helpers import COS_SPACE, L2_SPACE, Backend


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        unavailable("pgserver (PostgreSQL 16 + pgvector)", "pip install -e '.[test]'")
    data = Path(tempfile.mkdtemp(prefix="facerec-pgserver-"))
    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set
            warnings.simplefilter("ignore")
            server = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    except Exception as exc:  # initdb/startup failures come as several types
        shutil.rmtree(data, ignore_errors=True)
        unavailable("pgserver (PostgreSQL 16 + pgvector)", f"it failed to start: {exc}")
    # postgresql://postgres:@/postgres?host=/tmp/... → asyncpg over the unix socket
    url = make_url(server.get_uri()).set(drivername="postgresql+asyncpg")
    yield url.render_as_string(hide_password=False)
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


async def _schema_engine(url: str, what: str, how: str) -> tuple[AsyncEngine, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(DatabaseSettings(url=url))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
    except (TimeoutError, OSError) as exc:
        unavailable(what, f"{how} ({exc})")
    except Exception as exc:
        if "connect" in str(exc).lower() or "does not exist" in str(exc):
            unavailable(what, f"{how} ({exc})")
        raise
    finally:
        await admin.dispose()
    return create_engine(DatabaseSettings(url=url), search_path=f"{schema},public"), schema


async def _drop_schema(url: str, schema: str) -> None:
    admin = create_engine(DatabaseSettings(url=url))
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    await admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("pgvector", marks=pytest.mark.pgvector),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    schema: str | None = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'gallery.db'}"
        engine = create_engine(DatabaseSettings(url=url))
    elif kind == "postgres":
        url = POSTGRES_URL
        engine, schema = await _schema_engine(
            url, f"PostgreSQL at {url}", "start it or set FACEREC_TEST_POSTGRES_URL"
        )
    else:
        url = request.getfixturevalue("pgvector_url")
        engine, schema = await _schema_engine(url, "pgserver PostgreSQL", "see pgvector_url")
    try:
        await upgrade_database(Settings(database_url=url), engine=engine)
        repo = SqlGalleryRepository(engine)
        await repo.ensure_space(L2_SPACE)
        await repo.ensure_space(COS_SPACE)
        yield Backend(kind, url, schema, engine, repo)
        await repo.close()
    finally:
        await engine.dispose()
        if schema is not None:
            await _drop_schema(url, schema)
