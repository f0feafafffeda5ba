"""Helpers shared by the SQL repository: write transactions, change-log rows, row mapping."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, Table, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.errors import ConflictError, InvalidInputError
from facerec.storage.engine import writer
from facerec.storage.protocols import ChangeOp
from facerec.storage.schema import change_log, faces, persons
from facerec.values import BBox, Collection, Face, Person

# Every PostgreSQL write transaction takes this lock first. Writers are serialised (as SQLite's
# single writer is), so change-log seqs become visible in commit order: a reader that has seen
# seq N has seen every change <= N. Taking it first, before any row lock, cannot deadlock.
WRITE_LOCK_KEY = 7_301_652_002

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
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
        yield conn


async def log_changes(conn: AsyncConnection, changes: Sequence[Mapping[str, Any]]) -> None:
    """Append change-log rows (keys: op, person_id, face_id, collection, space)."""
    if not changes:
        return
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


def to_person(row: AnyRow) -> Person:
    m = row._mapping
    return Person(
        id=m["id"],
        name=m["name"],
        collection=m["collection"],
        employee_id=m["employee_id"],
        department=m["department"],
        position=m["position"],
        metadata=dict(m["metadata"] or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        face_count=int(m["face_count"]),
    )


def to_face(row: AnyRow, dim: int | None = None) -> Face:
    m = row._mapping
    bbox = m["bbox"]
    blob = m.get("embedding")
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
