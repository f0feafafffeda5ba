"""Photos of a social platform: every face tagged, stored, corrected and clustered.

A posted photo is tagged by :class:`~facerec.domain.tagging.TaggingService` (each identity at
most once per photo) and stored per face: box, quality, embedding (sealed when a key is set),
the assigned person or unknown, and the top-k candidates. Corrections: *confirm* a tag; *assign*
a face to a person (the face becomes one of the person's enrolled faces); *reject* ("not X": X is
never proposed again for that face, also when the photo is re-tagged). Unknown faces of one
(collection, embedding space) are clustered into suggested new persons
(:mod:`facerec.domain.clustering`), incrementally as photos arrive; a suggestion is accepted (a
new person with those faces enrolled, one transaction) or dismissed (never suggested again).
Photo ids are tenant-qualified like person ids; another tenant's photo is simply not found.

:class:`PhotoService` puts the use cases together, one mixin each on
:class:`~facerec.domain.photo_service_base.PhotoServiceBase`: tagging and re-tagging
(:mod:`~facerec.domain.photo_tagging`), corrections (:mod:`~facerec.domain.photo_corrections`)
and suggestions (:mod:`~facerec.domain.photo_suggestions`); reading, deleting and erasure are here.
"""

from __future__ import annotations

from facerec.domain.photo_corrections import PhotoCorrectionService
from facerec.domain.photo_suggestions import PersonSuggestionService
from facerec.domain.photo_tagging import PhotoTaggingService
from facerec.domain.photo_views import PhotoView
from facerec.domain.tenancy import TenantScope
from facerec.storage.photo_records import PersonPhotoPage, PhotoErasure
from facerec.values import Erasure

__all__ = ["PhotoService", "PhotoView"]


class PhotoService(PhotoTaggingService, PhotoCorrectionService, PersonSuggestionService):
    """Every photo use case (one mixin each) on one set of stores and services."""

    async def get(self, scope: TenantScope, photo_id: str) -> PhotoView:
        return await self._view((await self._own(scope, photo_id)).id)

    async def delete(self, scope: TenantScope, photo_id: str) -> PhotoErasure:
        """Erase a photo: every record of its faces. Faces it gave to persons stay theirs."""
        photo = await self._own(scope, photo_id)
        erased = await self.repository.delete_photo(photo.id)
        await self.persons.cache.purge(Erasure(image_sha256s=erased.image_sha256s))
        return erased

    async def person_photos(
        self, scope: TenantScope, person_id: str, *, limit: int, cursor: str | None
    ) -> PersonPhotoPage:
        person = await self._own_person(scope, person_id)
        return await self.repository.person_photos(person.id, limit=limit, cursor=cursor)

    async def on_erased(self, erasure: Erasure, collection: str | None) -> None:
        """Hook of :class:`PersonService`: a person's (or a collection's) erasure reaches its
        photo tags and confirmed faces."""
        if collection is not None:
            erased = await self.repository.erase_collection(collection)
            await self.persons.cache.purge(Erasure(image_sha256s=erased.image_sha256s))
        if erasure.person_ids:
            await self.repository.erase_persons(erasure.person_ids)
        elif erasure.face_ids:
            await self.repository.forget_enrolled(erasure.face_ids)
