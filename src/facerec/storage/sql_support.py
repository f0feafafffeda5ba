"""Helpers shared by the SQL repository: write transactions, change-log rows, row mapping.

Erasures (any write that logs a removal, and :func:`mark_erasure`) are followed, once committed,
by a SQLite WAL checkpoint (:func:`~facerec.storage.engine.checkpoint_wal`): with
``secure_delete`` on, no copy of the deleted rows is then left in the database or -wal file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, Table, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from facerec.errors import ConflictError, InvalidInputError, StorageUnavailableError
from facerec.storage.engine import (
    checkpoint_wal,
    is_connection_error,
    is_sqlite,
    is_sqlite_busy,
    write_lock,
    writer,
)
from facerec.storage.protocols import ERASING_OPS, ChangeOp
from facerec.storage.schema import change_log, faces, persons
from facerec.storage.sealing import (
    EMBEDDING_COLUMN,
    METADATA_COLUMN,
    Sealer,
    open_blob,
    open_json,
)
from facerec.values import DEFAULT_TENANT, KEY_SEPARATOR, BBox, Collection, Face, Person

# Every PostgreSQL write transaction takes this lock first. Writers are serialised (as SQLite's
# single writer is), so change-log seqs become visible in commit order: a reader that has seen
# seq N has seen every change <= N. Taking it first, before any row lock, cannot deadlock.
WRITE_LOCK_KEY = 7_301_652_002
# SQLite: another process holding the write lock past the busy timeout is waited for again, up to
# this long in all, before the write answers "storage unavailable" (never "database is locked").
SQLITE_BUSY_DEADLINE_S = 60.0
# The connection-info flag that change-log ops erasing data set (see mark_erasure).
_ERASED = "facerec_erased"

logger = logging.getLogger(__name__)

AnyRow = Row[*tuple[Any, ...]]

face_count = (
    select(func.count())
    .select_from(faces)
    .where(faces.c.person_id == persons.c.id)
    .correlate(persons)
    .scalar_subquery()
    .label("face_count")
)
person_columns = (*persons.c, face_count)
face_columns_light = tuple(c for c in faces.c if c.name != "embedding")


def utcnow() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def write_transaction(
    engine: AsyncEngine, *, lock_key: int = WRITE_LOCK_KEY
) -> AsyncIterator[AsyncConnection]:
    """One write transaction on the base ``engine``: committed when the block ends, rolled back
    when it raises. This process's writers take turns (:func:`write_lock`); PostgreSQL writers of
    every process also take the advisory lock ``lock_key``. An unreachable database raises
    :class:`StorageUnavailableError`. A transaction that erased (:func:`mark_erasure`) is
    followed, after its commit, by a SQLite WAL checkpoint."""
    async with write_lock(engine), storage_errors():
        erased = False
        async with AsyncExitStack() as stack:
            conn = await _begin_write(engine, stack)
            try:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
                yield conn
            finally:
                erased = bool(conn.info.pop(_ERASED, False))
        if erased and is_sqlite(engine):  # committed and the connection returned: checkpoint
            await checkpoint_wal(engine)


def mark_erasure(conn: AsyncConnection) -> None:
    """Say that this write transaction deletes or overwrites personal data (see
    :func:`write_transaction`); removals written to the change log mark it too."""
    conn.info[_ERASED] = True


async def _begin_write(engine: AsyncEngine, stack: AsyncExitStack) -> AsyncConnection:
    """Connect and BEGIN (IMMEDIATE on SQLite). The body has not run yet, so a BEGIN that found
    the SQLite file locked by another process past the busy timeout is simply tried again."""
    deadline = time.monotonic() + SQLITE_BUSY_DEADLINE_S
    pause = 0.05
    while True:
        attempt = AsyncExitStack()
        try:
            conn = await attempt.enter_async_context(writer(engine).connect())
            await attempt.enter_async_context(conn.begin())
        except Exception as error:
            await attempt.aclose()
            if not is_sqlite_busy(error) or time.monotonic() + pause > deadline:
                raise
            logger.warning("the SQLite database is locked by another process; waiting")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
            continue
        await stack.enter_async_context(attempt)
        return conn


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads; an unreachable database raises :class:`StorageUnavailableError`."""
    async with storage_errors(), engine.connect() as conn:
        yield conn


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Turn driver errors that mean "the database cannot be reached" into the typed error."""
    try:
        yield
    except StorageUnavailableError:
        raise
    except Exception as error:
        if not is_connection_error(error):
            raise
        raise StorageUnavailableError(
            "the database is unavailable; retry shortly", reason=type(error).__name__
        ) from error


async def log_changes(conn: AsyncConnection, changes: Sequence[Mapping[str, Any]]) -> None:
    """Append change-log rows (keys: op, person_id, face_id, collection, space)."""
    if not changes:
        return
    if any(c["op"] in ERASING_OPS for c in changes):
        mark_erasure(conn)
    now = utcnow()
    rows = [
        {
            "op": c["op"],
            "person_id": c.get("person_id"),
            "face_id": c.get("face_id"),
            "collection": c.get("collection"),
            "space": c.get("space"),
            "created_at": now,
        }
        for c in changes
    ]
    await conn.execute(insert(change_log), rows)


def change(op: ChangeOp, **fields: str | None) -> dict[str, Any]:
    return {"op": op, **fields}


async def insert_ignore(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], key: str
) -> bool:
    """INSERT … ON CONFLICT (key) DO NOTHING; True when a row was inserted.

    Only a conflict on ``key`` is ignored: other unique constraints still raise IntegrityError.
    """
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(table).values(dict(values)).on_conflict_do_nothing(index_elements=[key])
    )
    result = await conn.execute(statement)
    return bool(result.rowcount == 1)


def is_employee_conflict(exc: IntegrityError) -> bool:
    return "employee_id" in str(exc.orig).lower()


def duplicate_employee(employee_id: str | None) -> ConflictError:
    return ConflictError(
        f"employee_id {employee_id!r} already belongs to another person",
        code="duplicate_employee_id",
        employee_id=employee_id,
    )


def employee_key(collection: str, employee_id: str | None) -> str | None:
    """What persons.employee_id stores: the id qualified by its collection's key, so that
    employee ids are unique per collection (and so per tenant) under one unique column."""
    return None if employee_id is None else f"{collection}{KEY_SEPARATOR}{employee_id}"


def employee_id_of(collection: str, stored: str | None) -> str | None:
    prefix = f"{collection}{KEY_SEPARATOR}"
    if stored is None or not stored.startswith(prefix):
        return stored
    return stored[len(prefix) :]


def of_tenant(key: ColumnElement[str], tenant: str) -> ColumnElement[bool]:
    """Keys of one tenant: ``<tenant>~...``, or those without a separator for ``default``."""
    if tenant == DEFAULT_TENANT:
        return ~key.contains(KEY_SEPARATOR, autoescape=True)
    return key.startswith(tenant + KEY_SEPARATOR, autoescape=True)


def to_person(row: AnyRow, sealer: Sealer | None = None) -> Person:
    m = row._mapping
    metadata = open_json(sealer, m["metadata"], column=METADATA_COLUMN, row_id=m["id"])
    return Person(
        id=m["id"],
        name=m["name"],
        collection=m["collection"],
        employee_id=employee_id_of(m["collection"], m["employee_id"]),
        department=m["department"],
        position=m["position"],
        metadata=dict(metadata or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        face_count=int(m["face_count"]),
    )


def to_face(row: AnyRow, sealer: Sealer | None = None) -> Face:
    m = row._mapping
    bbox = m["bbox"]
    blob = m.get("embedding")
    if blob is not None:
        blob = open_blob(sealer, blob, column=EMBEDDING_COLUMN, row_id=m["id"])
    return Face(
        id=m["id"],
        person_id=m["person_id"],
        collection=m["collection"],
        space=m["space"],
        quality=float(m["quality"]),
        bbox=BBox(*(float(v) for v in bbox)) if bbox else None,
        image_sha256=m["image_sha256"],
        created_at=m["created_at"],
        embedding=None if blob is None else np.frombuffer(blob, dtype="<f4").astype(np.float32),
    )


def to_collection(row: AnyRow) -> Collection:
    m = row._mapping
    return Collection(
        name=m["name"],
        description=m["description"],
        created_at=m["created_at"],
        person_count=int(m["person_count"]),
    )


def bbox_json(bbox: BBox | None) -> list[float] | None:
    return None if bbox is None else [bbox.x1, bbox.y1, bbox.x2, bbox.y2]


def encode_cursor(created_at: datetime, person_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), person_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, person_id = json.loads(raw)
        created_at = datetime.fromisoformat(stamp)
        if not isinstance(person_id, str):
            raise TypeError(person_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInputError(
            "the pagination cursor is not valid", code="invalid_cursor"
        ) from exc
    return created_at, person_id
