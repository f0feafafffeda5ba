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
# Each read by name: its SQL for SQLite and for PostgreSQL (asyncpg's placeholders).
QUERIES = {
    "log_state": (LOG_STATE_SQL, LOG_STATE_SQL),
    # The collection's name if it exists (the primary key: one index probe).
    "collection": (
        "SELECT name FROM collections WHERE name = ?",
        "SELECT name FROM collections WHERE name = $1",
    ),
}


class LogProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite_uri = _sqlite_uri(engine)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any | None = None  # pooled connection (adapter) holding the prepared statements
        self._pg_statements: dict[str, Any] = {}
        self._pg_lock = asyncio.Lock()

    async def read(self) -> tuple[int, int] | None:
        """(last seq, pruned through), or None when the probe cannot answer right now."""
        rows = await self._fetch("log_state")
        if rows is None:
            return None
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    async def has_collection(self, name: str) -> bool | None:
        """Whether the collection exists, or None when the probe cannot answer right now."""
        rows = await self._fetch("collection", name)
        return None if rows is None else bool(rows)

    async def _fetch(self, query: str, *args: Any) -> list[Any] | None:
        """The rows of one of :data:`QUERIES`, or None when the probe cannot answer."""
        try:
            if self._sqlite_uri is not None:
                return (
                    self._connection(self._sqlite_uri).execute(QUERIES[query][0], args).fetchall()
                )
            if self._engine.dialect.name == "postgresql":
                async with self._pg_lock:
                    statement = (await self._prepared())[query]
                    return list(await statement.fetch(*args))
        except Exception as exc:  # driver errors of two libraries; the caller has a fallback
            log.debug("%s probe failed, using the pooled path: %s", query, exc)
            await self.close()
        return None

    def _connection(self, uri: str) -> sqlite3.Connection:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(
                uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
        return self._sqlite

    async def _prepared(self) -> dict[str, Any]:
        if not self._pg_statements:
            self._pg = pooled = await self._engine.raw_connection()
            driver = pooled.driver_connection  # the asyncpg connection
            assert driver is not None
            for name, (_, sql) in QUERIES.items():
                self._pg_statements[name] = await driver.prepare(sql)
        return self._pg_statements

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        self._pg_statements = {}
        if self._pg is not None:
            pooled, self._pg = self._pg, None
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
