"""Row-level write steps shared by the repository's transactions (faces, persons, pgvector).

With a :class:`~facerec.storage.sealing.Sealer`, embeddings and person metadata are sealed here
before they are written (bound to their row id); the pgvector mirror stays plaintext, as search
needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage import pgvector
from facerec.storage.models import (
    EmbeddingSpace,
    NewFace,
    NewPerson,
    StoredChip,
    as_vector,
    check_id,
    check_id_key,
    new_id,
)
from facerec.storage.schema import collections, face_chips, faces, persons
from facerec.storage.sealing import (
    CHIP_COLUMN,
    EMBEDDING_COLUMN,
    METADATA_COLUMN,
    Sealer,
    seal_blob,
    seal_json,
)
from facerec.storage.sql_index_source import SqlIndexSource
from facerec.storage.sql_support import (
    bbox_json,
    change,
    duplicate_employee,
    employee_key,
    is_employee_conflict,
    log_changes,
    mark_erasure,
    person_columns,
    to_person,
    utcnow,
)
from facerec.values import BBox, Erasure, Face, Person


def person_not_found(person_id: str) -> NotFoundError:
    return NotFoundError(
        f"person {person_id!r} not found", code="person_not_found", person_id=person_id
    )


def collection_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"collection {name!r} not found", code="collection_not_found", collection=name
    )


class SqlWrites(SqlIndexSource):
    """Steps run inside a caller's transaction; no method here opens one."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer | None = None) -> None:
        super().__init__(engine, sealer)
        self._pgvector: bool | None = None

    def _person_values(self, person: NewPerson, person_id: str | None = None) -> dict[str, Any]:
        if not person.name.strip():
            raise InvalidInputError("a person needs a name", code="invalid_name")
        now = utcnow()
        row_id = check_id_key(person_id or person.id or new_id(), "person")
        return {
            "id": row_id,
            "collection": person.collection,
            "name": person.name,
            "employee_id": employee_key(person.collection, person.employee_id),
            "department": person.department,
            "position": person.position,
            "metadata": self._seal_metadata(row_id, person.metadata),
            "created_at": now,
            "updated_at": now,
        }

    def _seal_metadata(self, person_id: str, metadata: Any) -> Any:
        """The stored form of a person's metadata: sealed when a key is set."""
        return seal_json(self._sealer, dict(metadata), column=METADATA_COLUMN, row_id=person_id)

    async def _load_person(self, conn: AsyncConnection, person_id: str) -> Person:
        row = (await conn.execute(select(*person_columns).where(persons.c.id == person_id))).first()
        if row is None:
            raise person_not_found(person_id)
        return to_person(row, self._sealer)

    async def _require_collection(self, conn: AsyncConnection, name: str) -> None:
        query = select(collections.c.name).where(collections.c.name == name)
        if (await conn.execute(query)).first() is None:
            raise collection_not_found(name)

    async def _check_employee_free(
        self, conn: AsyncConnection, collection: str, employee_id: str, person_id: str | None
    ) -> None:
        stored = employee_key(collection, employee_id)
        query = select(persons.c.id).where(persons.c.employee_id == stored)
        owner = (await conn.execute(query)).scalar()
        if owner is not None and owner != person_id:
            raise duplicate_employee(employee_id)

    def _integrity(self, exc: IntegrityError, employee_id: str | None) -> Exception:
        if is_employee_conflict(exc):
            return duplicate_employee(employee_id)
        return ConflictError("the change conflicts with stored data", code="conflict")

    async def _has_pgvector(self, conn: AsyncConnection) -> bool:
        if self._pgvector is None:
            self._pgvector = await pgvector.has_pgvector(conn)
        return self._pgvector

    async def _insert_faces(
        self, conn: AsyncConnection, person_id: str, collection: str, new: Sequence[NewFace]
    ) -> list[Face]:
        if not new:
            return []
        now = utcnow()
        rows: list[dict[str, Any]] = []
        spaces: dict[str, EmbeddingSpace] = {}
        for face in new:
            if face.space not in spaces:
                spaces[face.space] = await self._space_or_invalid(conn, face.space)
            vector = as_vector(face.embedding, spaces[face.space].dim)
            face_id = check_id(face.id, "face") if face.id else new_id()
            embedding = vector.astype("<f4").tobytes()
            rows.append(
                {
                    "id": face_id,
                    "person_id": person_id,
                    "collection": collection,
                    "space": face.space,
                    "embedding": seal_blob(
                        self._sealer, embedding, column=EMBEDDING_COLUMN, row_id=face_id
                    ),
                    "quality": float(face.quality),
                    "bbox": bbox_json(face.bbox),
                    "image_sha256": face.image_sha256,
                    "created_at": now,
                    "vector": vector,
                }
            )
        try:
            await conn.execute(
                insert(faces), [{k: v for k, v in r.items() if k != "vector"} for r in rows]
            )
        except IntegrityError as exc:
            raise ConflictError("a face id is already stored", code="duplicate_face_id") from exc
        kept = [
            self._chip_row(r["id"], collection, face.chip, now)
            for r, face in zip(rows, new, strict=True)
            if face.chip is not None
        ]
        if kept:
            await conn.execute(insert(face_chips), kept)
        if await self._has_pgvector(conn):
            await pgvector.insert_vectors(conn, [{**r, "face_id": r["id"]} for r in rows])
            for space in spaces.values():
                await pgvector.ensure_index(conn, collection, space)
        await log_changes(
            conn,
            [
                change(
                    "face_add",
                    person_id=person_id,
                    face_id=r["id"],
                    collection=collection,
                    space=r["space"],
                )
                for r in rows
            ],
        )
        return [to_face_from_values(r) for r in rows]

    def _chip_row(
        self, face_id: str, collection: str, chip: StoredChip, now: datetime
    ) -> dict[str, Any]:
        """The stored chip of a face: sealed like its embedding, bound to the face id."""
        return {
            "face_id": face_id,
            "origin_id": chip.origin_id or face_id,
            "collection": collection,
            "format": chip.format,
            "landmarks": [list(point) for point in chip.landmarks],
            "chip": seal_blob(self._sealer, chip.data, column=CHIP_COLUMN, row_id=face_id),
            "created_at": now,
        }

    async def _space_or_invalid(self, conn: AsyncConnection, name: str) -> EmbeddingSpace:
        try:
            return await self._space_in(conn, name)
        except NotFoundError as exc:
            raise InvalidInputError(
                f"embedding space {name!r} is not registered",
                code="unknown_embedding_space",
                space=name,
            ) from exc

    async def _drop_faces(self, conn: AsyncConnection, where: Any) -> Erasure:
        """Every erasure of faces passes here (delete person or face, replace on register): the
        transaction is marked for the post-commit WAL checkpoint."""
        mark_erasure(conn)
        removed = (
            await conn.execute(
                select(
                    faces.c.id,
                    faces.c.person_id,
                    faces.c.collection,
                    faces.c.space,
                    faces.c.image_sha256,
                ).where(where)
            )
        ).all()
        if not removed:
            return Erasure()
        await conn.execute(
            delete(face_chips).where(face_chips.c.face_id.in_([r[0] for r in removed]))
        )
        await conn.execute(delete(faces).where(where))
        await log_changes(
            conn,
            [
                change("face_remove", person_id=r[1], face_id=r[0], collection=r[2], space=r[3])
                for r in removed
            ],
        )
        return Erasure(
            face_ids=tuple(r[0] for r in removed),
            image_sha256s=tuple(sorted({r[4] for r in removed if r[4]})),
            updated_person_ids=tuple(sorted({r[1] for r in removed})),
        )


def to_face_from_values(values: dict[str, Any]) -> Face:
    bbox = values["bbox"]
    return Face(
        id=values["id"],
        person_id=values["person_id"],
        collection=values["collection"],
        space=values["space"],
        quality=values["quality"],
        bbox=BBox(*bbox) if bbox else None,
        image_sha256=values["image_sha256"],
        created_at=values["created_at"],
        embedding=values["vector"],
    )
