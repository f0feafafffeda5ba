"""Persons and collections: batched lookups through the cache, edits, and erasure.

Every cached copy of a person is purged when the person or one of its faces changes or is erased;
an erasure also lets the vector index drop the vectors at once (snapshot files included).
"""

from __future__ import annotations

from collections.abc import Sequence

from facerec.domain.gallery_cache import PersonCache
from facerec.errors import NotFoundError
from facerec.storage.models import PersonPatch
from facerec.storage.protocols import FaceSearcher, GalleryRepository
from facerec.values import Erasure, Person


class PersonService:
    def __init__(
        self, *, repository: GalleryRepository, searcher: FaceSearcher, cache: PersonCache
    ) -> None:
        self.repository = repository
        self.searcher = searcher
        self.cache = cache

    async def persons(self, person_ids: Sequence[str]) -> dict[str, Person]:
        """Persons by id: cached ones from the cache, the rest in one query (erased ids are
        simply absent)."""
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

    async def update_person(self, person_id: str, patch: PersonPatch) -> Person:
        person = await self.repository.update_person(person_id, patch)
        await self.cache.purge(Erasure(updated_person_ids=(person_id,)))
        return person

    async def _erased(self, erasure: Erasure) -> Erasure:
        await self.cache.purge(erasure)
        await self.searcher.sync()
        return erasure

    async def delete_person(self, person_id: str) -> Erasure:
        return await self._erased(await self.repository.delete_person(person_id))

    async def delete_face(self, person_id: str, face_id: str) -> Erasure:
        face = await self.repository.get_face(face_id)
        if face.person_id != person_id:
            raise NotFoundError(
                f"person {person_id!r} has no face {face_id!r}", code="face_not_found"
            )
        return await self._erased(await self.repository.delete_face(face_id))

    async def delete_collection(self, name: str, force: bool) -> Erasure:
        return await self._erased(await self.repository.delete_collection(name, force=force))
