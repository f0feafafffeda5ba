"""Async engine creation for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Nothing here runs at import time: the app's lifespan calls :func:`create_engine` and disposes the
engine on shutdown.

SQLite: WAL, foreign keys, ``secure_delete`` (deleted content is overwritten with zeros) and a busy
timeout on every connection, and explicit transactions. Writes
start with ``BEGIN IMMEDIATE`` (:func:`writer`), so two processes never both read, then fail to
upgrade to a write lock; reads use a plain ``BEGIN`` and are never blocked by a writer under WAL.
Within one process writers also take turns on an asyncio lock (:func:`write_lock`), so they queue
without holding pool connections and never race each other for the SQLite write lock. The
database file and its -wal and -shm files are owner-only (0600), and so is the directory when the
engine creates it (0700). After an erasure, :func:`checkpoint_wal` moves the WAL into the database
file and truncates it, so the deleted rows' old page images do not linger in the -wal file.

Outages: :func:`is_connection_error` says whether an exception means "the database cannot be
reached right now" (storage raises :class:`~facerec.errors.StorageUnavailableError` for those, and
the API answers 503 for them whichever layer they escape from); :class:`StorageProbe` is the cheap,
cached ``SELECT 1`` behind ``/ready``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from facerec.config import DatabaseSettings
from facerec.errors import StorageUnavailableError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A post-erasure checkpoint waits this long for readers (the erasing request waits with it).
SQLITE_CHECKPOINT_WAIT_MS = 2_000
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
_SQLITE_SUFFIXES = ("", "-wal", "-shm")
PG_CONNECT_TIMEOUT_S = 5.0  # asyncpg's default (60 s) would hold a request that long in an outage
_WRITE_OPTION = "facerec_write"
# One lock per engine (keyed weakly: it goes with the engine). Not shared across processes: there
# the SQLite write lock (BEGIN IMMEDIATE + busy timeout) and PostgreSQL advisory locks take over.
_write_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()
_CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.ENOENT,  # a unix socket that is not there while the server is down
    }
)


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
        path: Path | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            _create_private_file(path)
        engine = create_async_engine(url, echo=db.echo, **engine_kwargs)
        _configure_sqlite(engine, path)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, Any] = dict(engine_kwargs.pop("connect_args", {}))
        if search_path:
            settings = dict(connect_args.get("server_settings", {}))
            settings["search_path"] = search_path
            connect_args["server_settings"] = settings
        connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
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


def write_lock(engine: AsyncEngine) -> asyncio.Lock:
    """The lock this process's writers on ``engine`` take turns on (pass the base engine)."""
    key = engine.sync_engine
    lock = _write_locks.get(key)
    if lock is None:
        lock = _write_locks[key] = asyncio.Lock()
    return lock


def is_sqlite_busy(error: BaseException) -> bool:
    """SQLite's "database is locked" / "database is busy" (another process holds the lock)."""
    text_ = str(error).lower()
    return isinstance(error, exc.OperationalError) and (
        "database is locked" in text_ or "database is busy" in text_
    )


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps) means the database cannot be reached now:
    refused or dropped connections, timeouts, a server shutting down or starting, SQLite's file
    locked or unreadable. Programming errors and constraint violations are not."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 16:
            continue
        seen.add(id(current))
        if _is_connection_error_here(current):
            return True
        pending.extend((current.__cause__, current.__context__))
        if isinstance(current, exc.DBAPIError) and isinstance(current.orig, BaseException):
            pending.append(current.orig)
    return False


def _is_connection_error_here(error: BaseException) -> bool:
    if isinstance(error, StorageUnavailableError | exc.DisconnectionError | exc.TimeoutError):
        return True  # exc.TimeoutError: no pool connection came free in time
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, exc.InterfaceError):
            return True
        if isinstance(error, exc.OperationalError):
            message = str(error.orig).lower()
            return not ("no such" in message or "syntax error" in message)
        return False
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(error, OSError):
        return error.errno in _CONNECTION_ERRNOS or "connect" in str(error).lower()
    return _is_asyncpg_connection_error(error)


def _is_asyncpg_connection_error(error: BaseException) -> bool:
    module = type(error).__module__
    if not module.startswith("asyncpg"):
        return False
    import asyncpg  # already imported: the error came from it

    kinds = (
        asyncpg.exceptions.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExist
        asyncpg.exceptions.OperatorInterventionError,  # 57: admin shutdown, cannot connect now
        asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
        asyncpg.exceptions.InterfaceError,  # the connection is closed
    )
    return isinstance(error, kinds)


class StorageProbe:
    """A cheap ``SELECT 1`` with a short timeout, remembered for ``ttl`` seconds, so that a
    readiness probe polled often costs at most one query per ``ttl``."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = 1.0, ttl: float = 1.0) -> None:
        self._engine = engine
        self._timeout = timeout
        self._ttl = ttl
        self._ok = False
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> bool:
        if self._fresh():
            return self._ok
        async with self._lock:
            if not self._fresh():  # another caller checked while this one waited
                self._ok = await self._ping()
                self._checked_at = time.monotonic()
        return self._ok

    def _fresh(self) -> bool:
        return self._checked_at is not None and time.monotonic() - self._checked_at < self._ttl

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means not ready; the cause is logged by the requests
            return False
        return True


async def checkpoint_wal(engine: AsyncEngine) -> bool:
    """SQLite: copy the WAL into the database file and truncate it to zero bytes (with
    ``secure_delete`` the copied pages hold zeros where deleted rows were). True when done; False
    when readers or a writer kept it from completing within ``SQLITE_CHECKPOINT_WAIT_MS`` (the
    next erasure's checkpoint finishes the job). Other backends: nothing to do."""
    if not is_sqlite(engine):
        return True
    try:
        async with engine.connect() as conn:
            # On the driver connection: SQLAlchemy would BEGIN first, and a checkpoint inside a
            # transaction cannot run.
            busy = await conn.run_sync(_checkpoint_truncate)
    except exc.DBAPIError as error:  # the erasure itself is committed: report, do not fail it
        log.warning("the SQLite WAL checkpoint after an erasure failed: %s", error.orig)
        return False
    if busy:
        log.warning("the SQLite WAL checkpoint after an erasure was blocked by readers")
    return not busy


def _checkpoint_truncate(connection: Connection) -> bool:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_CHECKPOINT_WAIT_MS}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            row = cursor.fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
    return bool(row and row[0])


def _create_private_file(path: Path) -> None:
    """The directory (0700 when created here) and an empty database file (0600) if missing, so
    SQLite never creates it readable by others."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(_PRIVATE_DIR)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, _PRIVATE_FILE))


def _make_private(path: Path) -> None:
    for suffix in _SQLITE_SUFFIXES:
        try:
            os.chmod(f"{path}{suffix}", _PRIVATE_FILE)
        except FileNotFoundError:
            continue
        except PermissionError as exc:  # someone else's file: leave its mode alone
            log.warning("cannot make %s%s owner-only: %s", path, suffix, exc)


def _configure_sqlite(engine: AsyncEngine, path: Path | None) -> None:
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
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()
        if path is not None:  # -wal and -shm exist now; SQLite gives later ones the file's mode
            _make_private(path)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
