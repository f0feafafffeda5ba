"""The persons part of the gallery repository: create, read, list, update and erase persons.

Mixed into :class:`~facerec.storage.sql_repository.SqlGalleryRepository`; every public method is
one transaction and logs its changes (see :mod:`facerec.storage.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage.idempotency import forget_responses
from facerec.storage.models import (
    DEFAULT_COLLECTION,
    UNSET,
    NewPerson,
    PersonPage,
    PersonPatch,
)
from facerec.storage.schema import faces, persons
from facerec.storage.sql_support import (
    change,
    decode_cursor,
    employee_key,
    encode_cursor,
    insert_ignore,
    log_changes,
    of_tenant,
    person_columns,
    read_connection,
    to_face,
    to_person,
    utcnow,
    write_transaction,
)
from facerec.storage.sql_writes import SqlWrites, person_not_found
from facerec.values import KEY_SEPARATOR, Erasure, Face, Person

MAX_PAGE = 1000


class SqlPersons(SqlWrites):
    """Persons: one row each in ``persons``, their faces in ``faces``."""

    async def create_person(self, person: NewPerson) -> Person:
        async with write_transaction(self._engine) as conn:
            await self._require_collection(conn, person.collection)
            values = self._person_values(person)
            if person.employee_id is not None:
                await self._check_employee_free(conn, person.collection, person.employee_id, None)
            try:
                inserted = await insert_ignore(conn, persons, values, "id")
            except IntegrityError as exc:
                raise self._integrity(exc, person.employee_id) from exc
            if not inserted:
                raise ConflictError(
                    f"person {values['id']!r} already exists",
                    code="person_exists",
                    person_id=values["id"],
                )
            await log_changes(conn, [change("person_upsert", person_id=values["id"])])
            return await self._load_person(conn, values["id"])

    async def get_person(self, person_id: str) -> Person:
        async with read_connection(self._engine) as conn:
            return await self._load_person(conn, person_id)

    async def get_persons(self, person_ids: Sequence[str]) -> dict[str, Person]:
        """Several persons in one query (ids not found are absent from the result)."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return {}
        async with read_connection(self._engine) as conn:
            query = select(*person_columns).where(persons.c.id.in_(wanted))
            rows = await conn.execute(query)
            return {p.id: p for p in (to_person(r, self._sealer) for r in rows)}

    async def faces_of(self, person_ids: Sequence[str], space: str) -> list[Face]:
        """Every face (with its embedding) of these persons in one embedding space."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return []
        async with read_connection(self._engine) as conn:
            query = (
                select(*faces.c)
                .where(faces.c.person_id.in_(wanted), faces.c.space == space)
                .order_by(faces.c.person_id, faces.c.created_at, faces.c.id)
            )
            return [to_face(r, self._sealer) for r in await conn.execute(query)]

    async def get_person_by_employee_id(
        self, employee_id: str, collection: str = DEFAULT_COLLECTION
    ) -> Person:
        """The person of ``collection`` with this employee id (unique per collection)."""
        stored = employee_key(collection, employee_id)
        async with read_connection(self._engine) as conn:
            query = select(*person_columns).where(persons.c.employee_id == stored)
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(
                f"no person with employee_id {employee_id!r}",
                code="person_not_found",
                employee_id=employee_id,
            )
        return to_person(row, self._sealer)

    async def list_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
        collections_in: Sequence[str] | None = None,
    ) -> PersonPage:
        """``tenant``: only that tenant's persons; ``collections_in``: only these collections."""
        if limit < 1:
            raise InvalidInputError("limit must be at least 1", code="invalid_limit")
        limit = min(limit, MAX_PAGE)
        query = select(*person_columns)
        if collection is not None:
            query = query.where(persons.c.collection == collection)
        if tenant is not None:
            query = query.where(of_tenant(persons.c.collection, tenant))
        if collections_in is not None:
            query = query.where(persons.c.collection.in_(list(collections_in)))
        if name:
            query = query.where(persons.c.name.icontains(name, autoescape=True))
        if employee_id is not None:
            stored = persons.c.collection.concat(KEY_SEPARATOR + employee_id)
            query = query.where(persons.c.employee_id == stored)
        if cursor:
            after = decode_cursor(cursor)
            query = query.where(tuple_(persons.c.created_at, persons.c.id) > tuple_(*after))
        query = query.order_by(persons.c.created_at, persons.c.id).limit(limit + 1)
        async with read_connection(self._engine) as conn:
            if collection is not None:
                await self._require_collection(conn, collection)
            items = [to_person(r, self._sealer) for r in await conn.execute(query)]
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if more else None
        return PersonPage(items, encode_cursor(last.created_at, last.id) if last else None)

    async def update_person(self, person_id: str, patch: PersonPatch) -> Person:
        values: dict[str, Any] = {
            key: value
            for key, value in vars(patch).items()
            if value is not UNSET and key != "metadata"
        }
        if patch.metadata is not UNSET:
            values["metadata"] = self._seal_metadata(person_id, patch.metadata)
        if "name" in values and not str(values["name"]).strip():
            raise InvalidInputError("a person needs a name", code="invalid_name")
        async with write_transaction(self._engine) as conn:
            employee_id = values.get("employee_id")
            if employee_id is not None:
                current = await self._load_person(conn, person_id)
                await self._check_employee_free(conn, current.collection, employee_id, person_id)
                values["employee_id"] = employee_key(current.collection, employee_id)
            values["updated_at"] = utcnow()
            try:
                result = await conn.execute(
                    update(persons).where(persons.c.id == person_id).values(**values)
                )
            except IntegrityError as exc:
                raise self._integrity(exc, employee_id) from exc
            if result.rowcount == 0:
                raise person_not_found(person_id)
            await log_changes(conn, [change("person_upsert", person_id=person_id)])
            return await self._load_person(conn, person_id)

    async def delete_person(self, person_id: str) -> Erasure:
        """Erasure: the person, its faces and embeddings (pgvector rows cascade) are deleted."""
        async with write_transaction(self._engine) as conn:
            removed = await self._drop_faces(conn, faces.c.person_id == person_id)
            result = await conn.execute(delete(persons).where(persons.c.id == person_id))
            if result.rowcount == 0:
                raise person_not_found(person_id)
            await forget_responses(conn, [person_id])
            await log_changes(conn, [change("person_remove", person_id=person_id)])
        return Erasure(
            person_ids=(person_id,),
            face_ids=removed.face_ids,
            image_sha256s=removed.image_sha256s,
        )
