"""Async engine creation for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Nothing here runs at import time: the app's lifespan calls :func:`create_engine` and disposes the
engine on shutdown.

SQLite: WAL, foreign keys and a busy timeout on every connection, and explicit transactions. Writes
start with ``BEGIN IMMEDIATE`` (:func:`writer`), so two processes never both read, then fail to
upgrade to a write lock; reads use a plain ``BEGIN`` and are never blocked by a writer under WAL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from facerec.config import DatabaseSettings

SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "facerec_write"


def create_engine(
    db: DatabaseSettings,
    *,
    search_path: str | None = None,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """The engine for ``db.url``. ``search_path`` (PostgreSQL) puts tables in another schema."""
    url = make_url(db.url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=db.echo, **engine_kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, Any] = dict(engine_kwargs.pop("connect_args", {}))
        if search_path:
            settings = dict(connect_args.get("server_settings", {}))
            settings["search_path"] = search_path
            connect_args["server_settings"] = settings
        engine_kwargs.setdefault("pool_size", db.pool_size)
        engine_kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, echo=db.echo, connect_args=connect_args, **engine_kwargs)
    raise ValueError(
        f"unsupported database URL scheme {url.drivername!r}: use sqlite or postgresql"
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """An ``AsyncSession`` factory for code that prefers sessions (the repository uses Core)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, whose transactions take the SQLite write lock up front."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's implicit BEGIN is deferred and skips DDL; the "begin" hook below is used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
