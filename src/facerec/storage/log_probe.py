"""The per-search change-log check, made cheap.

``IndexRegistry`` reads ``MAX(seq)`` before every search. Through SQLAlchemy's async layer that
read costs 0.5-1 ms (a thread hop for aiosqlite; BEGIN/ROLLBACK and a pool checkout for asyncpg),
as much as the HNSW search itself. So:

- SQLite: a plain read-only ``sqlite3`` connection answers on the event loop thread. An indexed
  one-row read takes microseconds, and under WAL a reader never waits for a writer (``timeout=0``:
  if the file is busy anyway, the caller falls back to the async path).
- PostgreSQL: one pooled connection is kept for a prepared statement (about 0.06 ms).

Any failure closes the probe and returns None; the caller then uses the normal path and the next
call opens a new probe.
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


class LogProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite_uri = _sqlite_uri(engine)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any | None = None  # pooled connection (adapter) holding the prepared statement
        self._pg_statement: Any | None = None
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

    def _read_sqlite(self, uri: str) -> tuple[int, int]:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(
                uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
        row = self._sqlite.execute(LOG_STATE_SQL).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    async def _read_pg(self) -> tuple[int, int]:
        if self._pg_statement is None:
            self._pg = pooled = await self._engine.raw_connection()
            driver = pooled.driver_connection  # the asyncpg connection
            assert driver is not None
            self._pg_statement = await driver.prepare(LOG_STATE_SQL)
        row = await self._pg_statement.fetchrow()
        return int(row[0] or 0), int(row[1] or 0)

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            pooled, self._pg, self._pg_statement = self._pg, None, None
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
