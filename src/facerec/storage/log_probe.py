"""The per-request reads, made cheap: the change-log check before every search, and whether a
recognize's collection exists.

``IndexRegistry`` reads ``MAX(seq)`` before every search, and a recognize checks its collection.
Through SQLAlchemy's async layer each read costs 0.5-1 ms (a thread hop for aiosqlite per
statement, BEGIN and ROLLBACK included; a pool checkout for asyncpg), as much as the HNSW search
itself, and on a cache hit the collection check was most of the request (~4 of ~7 ms). So:

- SQLite: a plain read-only ``sqlite3`` connection answers on the event loop thread. An indexed
  one-row read takes microseconds, and under WAL a reader never waits for a writer (``timeout=0``:
  if the file is busy anyway, the caller falls back to the async path).
- PostgreSQL: one pooled connection is kept for a prepared statement (about 0.06 ms).

Any failure closes the probe and returns None; the caller then uses the normal path (which
reports an unreachable database as such) and the next call opens a new probe.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

LOG_STATE_SQL = (
    "SELECT (SELECT MAX(seq) FROM change_log),"
    " (SELECT value FROM gallery_state WHERE key = 'pruned_through')"
)
COLLECTION_SQL = {  # the collection's name if it exists (the primary key: one index probe)
    "sqlite": "SELECT name FROM collections WHERE name = ?",
    "postgresql": "SELECT name FROM collections WHERE name = $1",
}


class LogProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite_uri = _sqlite_uri(engine)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any | None = None  # pooled connection (adapter) holding the prepared statement
        self._pg_statement: Any | None = None
        self._pg_collection: Any | None = None
        self._pg_lock = asyncio.Lock()

    async def read(self) -> tuple[int, int] | None:
        """(last seq, pruned through), or None when the probe cannot answer right now."""
        try:
            if self._sqlite_uri is not None:
                return self._read_sqlite(self._sqlite_uri)
            if self._engine.dialect.name == "postgresql":
                async with self._pg_lock:
                    return await self._read_pg()
        except Exception as exc:  # driver errors of two libraries; the caller has a fallback
            log.debug("change-log probe failed, using the pooled path: %s", exc)
            await self.close()
        return None

    async def has_collection(self, name: str) -> bool | None:
        """Whether the collection exists, or None when the probe cannot answer right now."""
        try:
            if self._sqlite_uri is not None:
                found = self._connection(self._sqlite_uri).execute(
                    COLLECTION_SQL["sqlite"], (name,)
                )
                return found.fetchone() is not None
            if self._engine.dialect.name == "postgresql":
                async with self._pg_lock:
                    await self._prepare_pg()
                    assert self._pg_collection is not None
                    return await self._pg_collection.fetchrow(name) is not None
        except Exception as exc:  # as in read()
            log.debug("collection probe failed, using the pooled path: %s", exc)
            await self.close()
        return None

    def _connection(self, uri: str) -> sqlite3.Connection:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(
                uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
        return self._sqlite

    def _read_sqlite(self, uri: str) -> tuple[int, int]:
        row = self._connection(uri).execute(LOG_STATE_SQL).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    async def _prepare_pg(self) -> None:
        if self._pg_statement is None:
            self._pg = pooled = await self._engine.raw_connection()
            driver = pooled.driver_connection  # the asyncpg connection
            assert driver is not None
            self._pg_statement = await driver.prepare(LOG_STATE_SQL)
            self._pg_collection = await driver.prepare(COLLECTION_SQL["postgresql"])

    async def _read_pg(self) -> tuple[int, int]:
        await self._prepare_pg()
        assert self._pg_statement is not None
        row = await self._pg_statement.fetchrow()
        return int(row[0] or 0), int(row[1] or 0)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            pooled, self._pg, self._pg_statement = self._pg, None, None
            self._pg_collection = None
            try:
                pooled.invalidate()  # never hand a connection in an unknown state back
            except Exception as exc:  # closing a broken connection
                log.debug("closing the change-log probe connection: %s", exc)


def _sqlite_uri(engine: AsyncEngine) -> str | None:
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve().as_uri() + "?mode=ro"
