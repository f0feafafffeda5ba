"""Apply the Alembic migrations shipped in ``storage/migrations`` (no alembic.ini needed).

A database already at :data:`HEAD_REVISION` (every start but the first) is recognised with one
plain read of ``alembic_version``: Alembic itself (~10 MiB of every worker's memory with Mako)
is imported only when there is something to migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.config import Settings
from facerec.storage.engine import create_engine
from facerec.storage.pgvector import ensure_pgvector
from facerec.storage.sealing import Sealer
from facerec.storage.sql_support import read_connection, write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Several API processes may start at once: they take turns (PostgreSQL advisory lock; SQLite's
# BEGIN IMMEDIATE write lock), and the later ones find nothing left to do.
_MIGRATION_LOCK = 7_301_652_001
# The newest revision in migrations/versions (a test holds it to Alembic's own head).
HEAD_REVISION = "0008"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade_database(
    settings: Settings, *, engine: AsyncEngine | None = None, revision: str = "head"
) -> None:
    """Bring the database at ``settings.db.url`` (or ``engine``) to ``revision``.

    An unreachable database raises :class:`~facerec.errors.StorageUnavailableError` (the app's
    start-up retries it)."""
    owned = engine is None
    engine = engine or create_engine(settings.db)
    try:
        async with write_transaction(engine, lock_key=_MIGRATION_LOCK) as conn:
            await conn.run_sync(_upgrade, revision, Sealer.from_settings(settings.db))
    finally:
        if owned:
            await engine.dispose()


def _upgrade(connection: Connection, revision: str, sealer: Sealer | None) -> None:
    if revision != "head" or applied_revision(connection) != HEAD_REVISION:
        from alembic import command

        command.upgrade(alembic_config(connection), revision)
    if revision == "head":
        # Covers pgvector installed after revision 0002 ran: creates and backfills the table now
        # (decrypting embeddings stored encrypted).
        ensure_pgvector(connection, sealer=sealer)


async def database_revision(engine: AsyncEngine) -> str | None:
    """The applied revision, or None for a database never migrated."""
    async with read_connection(engine) as conn:
        return await conn.run_sync(applied_revision)


def applied_revision(connection: Connection) -> str | None:
    """What ``alembic_version`` holds (Alembic's own bookkeeping table, one row), without
    importing Alembic; None for a database never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if len(versions) == 1 else None
