"""The collections of the gallery repository (:class:`~facerec.storage.sql_repository.
SqlGalleryRepository`): create, list, check and erase, on SQLAlchemy Core."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from facerec.errors import ConflictError
from facerec.storage import pgvector
from facerec.storage.idempotency import forget_responses
from facerec.storage.models import DEFAULT_COLLECTION, check_collection_key
from facerec.storage.schema import (
    collection_spaces,
    collections,
    face_chips,
    faces,
    gallery_migrations,
    persons,
)
from facerec.storage.sql_persons import SqlPersons
from facerec.storage.sql_support import (
    change,
    insert_ignore,
    log_changes,
    of_tenant,
    read_connection,
    to_collection,
    utcnow,
    write_transaction,
)
from facerec.storage.sql_writes import collection_not_found
from facerec.storage.validation import DESCRIPTION_MAX, check_text
from facerec.values import Collection, Erasure

_person_count = (
    select(func.count())
    .select_from(persons)
    .where(persons.c.collection == collections.c.name)
    .correlate(collections)
    .scalar_subquery()
    .label("person_count")
)


class SqlCollections(SqlPersons):
    """Collections, and which (collection, space) pairs hold faces; each method one
    transaction."""

    async def create_collection(self, name: str, description: str = "") -> Collection:
        check_collection_key(name)
        check_text(description, "description", DESCRIPTION_MAX)
        async with write_transaction(self._engine) as conn:
            now = utcnow()
            values = {"name": name, "description": description, "created_at": now}
            if not await insert_ignore(conn, collections, values, "name"):
                raise ConflictError(
                    f"collection {name!r} already exists", code="collection_exists", collection=name
                )
        return Collection(name, description, now, 0)

    async def space_counts(self, collection: str) -> dict[str, int]:
        """Faces of one collection per embedding space."""
        async with read_connection(self._engine) as conn:
            query = (
                select(faces.c.space, func.count())
                .where(faces.c.collection == collection)
                .group_by(faces.c.space)
            )
            return {row[0]: int(row[1]) for row in await conn.execute(query)}

    async def list_collections(self, *, tenant: str | None = None) -> list[Collection]:
        """Every collection, or only those of ``tenant`` (keys, see values.qualify)."""
        query = select(*collections.c, _person_count).order_by("name")
        if tenant is not None:
            query = query.where(of_tenant(collections.c.name, tenant))
        async with read_connection(self._engine) as conn:
            return [to_collection(r) for r in await conn.execute(query)]

    async def ensure_collection(self, name: str, description: str = "") -> None:
        """Create the collection unless it exists (a tenant's ``default``, on first use)."""
        check_collection_key(name)
        async with write_transaction(self._engine) as conn:
            values = {"name": name, "description": description, "created_at": utcnow()}
            await insert_ignore(conn, collections, values, "name")

    async def get_collection(self, name: str) -> Collection:
        async with read_connection(self._engine) as conn:
            query = select(*collections.c, _person_count).where(collections.c.name == name)
            row = (await conn.execute(query)).first()
        if row is None:
            raise collection_not_found(name)
        return to_collection(row)

    async def require_collection(self, name: str) -> None:
        found = await self._probe.has_collection(name)  # no thread hop, no transaction
        if found is not None:
            if not found:
                raise collection_not_found(name)
            return
        async with read_connection(self._engine) as conn:
            await self._require_collection(conn, name)

    async def index_keys(self) -> list[tuple[str, str]]:
        async with read_connection(self._engine) as conn:
            query = select(faces.c.collection, faces.c.space).distinct()
            return [(row[0], row[1]) for row in await conn.execute(query)]

    async def delete_collection(self, name: str, *, force: bool = False) -> Erasure:
        if name == DEFAULT_COLLECTION:
            raise ConflictError(
                "the default collection cannot be deleted", code="default_collection"
            )
        async with write_transaction(self._engine) as conn:
            await self._require_collection(conn, name)
            person_ids = list(
                (await conn.execute(select(persons.c.id).where(persons.c.collection == name)))
                .scalars()
                .all()
            )
            if person_ids and not force:
                raise ConflictError(
                    f"collection {name!r} has {len(person_ids)} persons; use force to erase them",
                    code="collection_not_empty",
                    collection=name,
                    person_count=len(person_ids),
                )
            removed = (
                await conn.execute(
                    select(faces.c.id, faces.c.image_sha256, faces.c.space).where(
                        faces.c.collection == name
                    )
                )
            ).all()
            if await self._has_pgvector(conn):
                for space in {r[2] for r in removed}:
                    await pgvector.drop_index(conn, name, space)
            await conn.execute(delete(face_chips).where(face_chips.c.collection == name))
            await conn.execute(delete(faces).where(faces.c.collection == name))
            await conn.execute(delete(persons).where(persons.c.collection == name))
            await conn.execute(
                delete(collection_spaces).where(collection_spaces.c.collection == name)
            )
            await conn.execute(
                delete(gallery_migrations).where(gallery_migrations.c.collection == name)
            )
            await conn.execute(delete(collections).where(collections.c.name == name))
            await forget_responses(conn, person_ids)
            # One collection_remove drops the whole index; no per-face rows needed.
            await log_changes(
                conn,
                [change("person_remove", person_id=p, collection=name) for p in person_ids]
                + [change("collection_remove", collection=name)],
            )
        return Erasure(
            person_ids=tuple(person_ids),
            face_ids=tuple(r[0] for r in removed),
            image_sha256s=tuple(sorted({r[1] for r in removed if r[1]})),
        )
