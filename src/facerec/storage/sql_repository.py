"""The gallery repository on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Every public method is one transaction. Every change to faces or persons also appends change-log
rows in that transaction (see :mod:`facerec.storage.registry` for how other processes use them).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage.engine import StorageProbe
from facerec.storage.idempotency import SqlIdempotencyStore
from facerec.storage.models import (
    EmbeddingSpace,
    NewFace,
    NewPerson,
    Registration,
    check_id_key,
    check_space_name,
)
from facerec.storage.schema import (
    embedding_spaces,
    face_chips,
    faces,
    persons,
)
from facerec.storage.sealing import Sealer
from facerec.storage.sql_collections import SqlCollections
from facerec.storage.sql_support import (
    change,
    duplicate_employee,
    employee_key,
    face_columns_light,
    insert_ignore,
    log_changes,
    read_connection,
    to_face,
    utcnow,
    write_transaction,
)
from facerec.storage.sql_writes import person_not_found
from facerec.values import Erasure, Face


class SqlGalleryRepository(SqlCollections):
    """:class:`GalleryRepository` and :class:`IndexSource` on one ``AsyncEngine``.

    Call :meth:`close` before disposing the engine (it holds the change-log probe).
    """

    def __init__(self, engine: AsyncEngine, *, sealer: Sealer | None = None) -> None:
        """``sealer``: embeddings and metadata are encrypted at rest with its key."""
        super().__init__(engine, sealer)
        self.idempotency = SqlIdempotencyStore(engine)
        self._ready_probe = StorageProbe(engine)

    async def ping(self) -> bool:
        """Whether the database answers now (a ``SELECT 1``, remembered for a second)."""
        return await self._ready_probe.check()

    # ---- embedding spaces --------------------------------------------------------------------

    async def ensure_space(self, space: EmbeddingSpace) -> EmbeddingSpace:
        """Register an embedding space (idempotent). Faces can only be stored in a known space."""
        check_space_name(space.name)
        if space.dim <= 0 or space.metric not in ("l2", "cosine"):
            raise InvalidInputError(
                "an embedding space needs dim > 0 and metric l2 or cosine",
                code="invalid_embedding_space",
            )
        if self._spaces.get(space.name) == space:  # known already: no write transaction
            return space
        async with write_transaction(self._engine) as conn:
            values = {**vars(space), "created_at": utcnow()}
            await insert_ignore(conn, embedding_spaces, values, "name")
        stored = await self.get_space(space.name)
        if stored != space:
            raise ConflictError(
                f"embedding space {space.name!r} is registered as {stored.dim}-D {stored.metric}",
                code="embedding_space_mismatch",
                space=space.name,
            )
        return stored

    # ---- faces -------------------------------------------------------------------------------

    async def add_faces(
        self, person_id: str, faces_: Sequence[NewFace], *, create: NewPerson | None = None
    ) -> list[Face]:
        """Append faces; with ``create``, the person is created first unless it exists.

        Concurrent calls for the same new id create one person: the insert ignores a primary
        key conflict and the faces are appended to whichever call's row won.
        """
        check_id_key(person_id, "person")
        if create is not None and create.id not in (None, person_id):
            raise InvalidInputError("create.id differs from person_id", code="invalid_person_id")
        async with write_transaction(self._engine) as conn:
            if create is not None:
                await self._require_collection(conn, create.collection)
                values = self._person_values(create, person_id)
                try:
                    if await insert_ignore(conn, persons, values, "id"):
                        await log_changes(conn, [change("person_upsert", person_id=person_id)])
                except IntegrityError as exc:
                    raise self._integrity(exc, create.employee_id) from exc
            row = (
                await conn.execute(select(persons.c.collection).where(persons.c.id == person_id))
            ).first()
            if row is None:
                raise person_not_found(person_id)
            added = await self._insert_faces(conn, person_id, row[0], faces_)
            await conn.execute(
                update(persons).where(persons.c.id == person_id).values(updated_at=utcnow())
            )
            return added

    async def list_faces(self, person_id: str, *, with_embeddings: bool = False) -> list[Face]:
        columns = faces.c if with_embeddings else face_columns_light
        async with read_connection(self._engine) as conn:
            await self._load_person(conn, person_id)
            query = (
                select(*columns)
                .where(faces.c.person_id == person_id)
                .order_by(faces.c.created_at, faces.c.id)
            )
            return [to_face(r, self._sealer) for r in await conn.execute(query)]

    async def get_face(self, face_id: str, *, with_embeddings: bool = False) -> Face:
        columns = faces.c if with_embeddings else face_columns_light
        async with read_connection(self._engine) as conn:
            row = (await conn.execute(select(*columns).where(faces.c.id == face_id))).first()
        if row is None:
            raise NotFoundError(
                f"face {face_id!r} not found", code="face_not_found", face_id=face_id
            )
        return to_face(row, self._sealer)

    async def delete_face(self, face_id: str) -> Erasure:
        """Erase one face, with its copies re-embedded into other spaces (same kept chip)."""
        async with write_transaction(self._engine) as conn:
            origin = select(face_chips.c.origin_id).where(face_chips.c.face_id == face_id)
            copies = select(face_chips.c.face_id).where(face_chips.c.origin_id.in_(origin))
            removed = await self._drop_faces(
                conn, or_(faces.c.id == face_id, faces.c.id.in_(copies))
            )
            if not removed.face_ids:
                raise NotFoundError(
                    f"face {face_id!r} not found", code="face_not_found", face_id=face_id
                )
        return removed

    async def register_person(
        self, person: NewPerson, faces_: Sequence[NewFace], *, replace: bool = False
    ) -> Registration:
        """Create a person with its faces, all or nothing.

        An existing person (same id, or same employee_id) is a conflict unless ``replace``: then
        its fields are overwritten and its old faces erased, in the same transaction.
        """
        async with write_transaction(self._engine) as conn:
            await self._require_collection(conn, person.collection)
            clauses = [persons.c.id == person.id] if person.id else []
            stored = employee_key(person.collection, person.employee_id)
            if stored is not None:
                clauses.append(persons.c.employee_id == stored)
            found = []
            if clauses:
                query = select(persons.c.id, persons.c.employee_id).where(or_(*clauses))
                found = list((await conn.execute(query)).all())
            by_id = next((r[0] for r in found if r[0] == person.id), None)
            by_employee = next((r[0] for r in found if r[1] is not None and r[1] == stored), None)
            if by_employee is not None and (
                not replace or (person.id is not None and by_employee != person.id)
            ):
                raise duplicate_employee(person.employee_id)
            target = by_id or by_employee
            if target is not None and not replace:
                raise ConflictError(
                    f"person {target!r} already exists", code="person_exists", person_id=target
                )
            removed = Erasure()
            if target is not None:
                person_id = target
                removed = await self._drop_faces(conn, faces.c.person_id == person_id)
                values = self._person_values(person, person_id)
                del values["created_at"], values["id"]
                await conn.execute(update(persons).where(persons.c.id == person_id).values(values))
            else:
                values = self._person_values(person)
                person_id = values["id"]
                try:
                    await conn.execute(insert(persons).values(values))
                except IntegrityError as exc:
                    raise self._integrity(exc, person.employee_id) from exc
            await log_changes(conn, [change("person_upsert", person_id=person_id)])
            added = await self._insert_faces(conn, person_id, person.collection, faces_)
            return Registration(
                await self._load_person(conn, person_id), added, target is None, removed
            )
