"""Persons and collections as one caller sees them: batched lookups through the cache, edits,
erasure, each within the caller's tenant (:class:`~facerec.domain.tenancy.TenantScope`).

Every cached copy of a person is purged when the person or one of its faces changes or is erased;
an erasure also lets the vector index drop the vectors at once (snapshot files included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from facerec.domain.gallery_cache import PersonCache
from facerec.domain.templates import Template, templates_of
from facerec.domain.tenancy import TenantScope
from facerec.errors import ConflictError, NotFoundError
from facerec.storage.models import DEFAULT_COLLECTION, PersonPage, PersonPatch
from facerec.storage.protocols import FaceSearcher, GalleryRepository
from facerec.values import Collection, Erasure, Face, Person

# Called after every erasure with what was erased and, for a deleted collection, its key (the
# photos of facerec.domain.photos hang their tags and confirmed faces here).
ErasureHook = Callable[[Erasure, str | None], Awaitable[None]]


class PersonService:
    def __init__(
        self, *, repository: GalleryRepository, searcher: FaceSearcher, cache: PersonCache
    ) -> None:
        self.repository = repository
        self.searcher = searcher
        self.cache = cache
        self.erasure_hooks: list[ErasureHook] = []
        self._known_defaults: set[str] = set()

    # --- collections --------------------------------------------------------------------------

    async def collection_key(self, scope: TenantScope, name: str) -> str:
        """The stored key of one of the caller's collections; a tenant's ``default`` collection
        is created on first use, as the default tenant's was by the first migration."""
        key = scope.collection_key(name)
        if name == DEFAULT_COLLECTION and key != name and key not in self._known_defaults:
            await self.repository.ensure_collection(key, "Default collection")
            self._known_defaults.add(key)
        return key

    async def create_collection(
        self, scope: TenantScope, name: str, description: str
    ) -> Collection:
        return await self.repository.create_collection(scope.collection_key(name), description)

    async def list_collections(self, scope: TenantScope) -> list[Collection]:
        if scope.allows(DEFAULT_COLLECTION):
            await self.collection_key(scope, DEFAULT_COLLECTION)
        found = await self.repository.list_collections(tenant=scope.tenant)
        return [c for c in found if scope.owns_collection(c.name)]

    async def delete_collection(self, scope: TenantScope, name: str, force: bool) -> Erasure:
        key = scope.collection_key(name)
        if name == DEFAULT_COLLECTION:
            raise ConflictError(
                "the default collection cannot be deleted", code="default_collection"
            )
        erasure = await self.repository.delete_collection(key, force=force)
        return await self._erased(erasure, collection=key)

    # --- persons ------------------------------------------------------------------------------

    async def persons(self, person_ids: Sequence[str]) -> dict[str, Person]:
        """Persons by stored id: cached ones from the cache, the rest in one query (erased ids
        are simply absent)."""
        found: dict[str, Person] = {}
        missing: list[str] = []
        for person_id in dict.fromkeys(person_ids):
            cached = await self.cache.get_person(person_id)
            if cached is not None:
                found[person_id] = cached
            else:
                missing.append(person_id)
        if missing:
            loaded = await self.repository.get_persons(missing)
            for person in loaded.values():
                await self.cache.put_person(person)
            found.update(loaded)
        return found

    async def person(self, person_id: str) -> Person | None:
        return (await self.persons([person_id])).get(person_id)

    async def get(self, scope: TenantScope, person_id: str) -> tuple[Person, list[Face]]:
        person = await self._own(scope, person_id)
        return person, await self.repository.list_faces(person.id)

    async def list_persons(
        self,
        scope: TenantScope,
        *,
        collection: str | None,
        name: str | None,
        employee_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> PersonPage:
        key = await self.collection_key(scope, collection) if collection is not None else None
        allowed = scope.collection_keys()
        return await self.repository.list_persons(
            collection=key,
            name=name,
            employee_id=employee_id,
            limit=limit,
            cursor=cursor,
            tenant=scope.tenant,
            collections_in=sorted(allowed) if allowed is not None else None,
        )

    async def update_person(self, scope: TenantScope, person_id: str, patch: PersonPatch) -> Person:
        key = (await self._own(scope, person_id)).id
        person = await self.repository.update_person(key, patch)
        await self.cache.purge(Erasure(updated_person_ids=(key,)))
        return person

    async def delete_person(self, scope: TenantScope, person_id: str) -> Erasure:
        key = (await self._own(scope, person_id)).id
        return await self._erased(await self.repository.delete_person(key))

    async def delete_face(self, scope: TenantScope, person_id: str, face_id: str) -> Erasure:
        key = (await self._own(scope, person_id)).id
        face = await self.repository.get_face(face_id)
        if face.person_id != key:
            raise NotFoundError(
                f"person {person_id!r} has no face {face_id!r}", code="face_not_found"
            )
        return await self._erased(await self.repository.delete_face(face_id))

    async def templates(
        self, person_ids: Sequence[str], space: str, dim: int
    ) -> dict[str, Template]:
        """Every face (vector, quality) of these persons in ``space``: through this process's
        template cache when the searcher applies the change log (so other processes' erasures
        purge it), else from the database."""
        if not self.searcher.applies_change_log:
            return templates_of(await self.repository.faces_of(list(person_ids), space))
        return await self.cache.templates.templates(
            person_ids, space, dim, self.repository.faces_of
        )

    async def _own(self, scope: TenantScope, person_id: str) -> Person:
        """The caller's person, or 404 exactly as for an id nobody has (another tenant's
        person is another key); a collection the key may not use is 403."""
        person = await self.repository.get_person(scope.person_key(person_id))
        scope.collection_key(scope.collection_name(person.collection))
        return person

    async def _erased(self, erasure: Erasure, *, collection: str | None = None) -> Erasure:
        await self.cache.purge(erasure)
        await self.searcher.sync()
        for hook in self.erasure_hooks:
            await hook(erasure, collection)
        return erasure
