"""Corrections of a stored photo's faces: *confirm* a tag; *assign* a face to a person (the face
becomes one of the person's enrolled faces); *reject* ("not X": X is never proposed again for
that face, also when the photo is re-tagged)."""

from __future__ import annotations

from facerec.domain.photo_service_base import PhotoServiceBase, new_face_of
from facerec.domain.photo_views import PhotoView
from facerec.domain.tenancy import TenantScope
from facerec.errors import ConflictError
from facerec.storage.photo_records import CONFIRMED, UNKNOWN
from facerec.values import Face


class PhotoCorrectionService(PhotoServiceBase):
    """A user's word on a stored face: confirm, assign, reject."""

    async def confirm(self, scope: TenantScope, photo_id: str, index: int) -> PhotoView:
        photo, face = await self._face(scope, photo_id, index)
        if face.person_id is None:
            raise ConflictError(
                f"face {index} of photo {photo_id!r} has no tag to confirm",
                code="photo_face_not_tagged",
            )
        await self.repository.set_tag(face.id, face.person_id, CONFIRMED, "user")
        return await self._view(photo.id)

    async def assign(
        self, scope: TenantScope, photo_id: str, index: int, person_id: str
    ) -> tuple[PhotoView, Face]:
        """The face is this person's: it becomes one of the person's enrolled faces."""
        photo, face = await self._face(scope, photo_id, index, with_embeddings=True)
        person = await self._own_person(scope, person_id)
        if person.collection != photo.collection:
            raise ConflictError(
                f"person {person_id!r} belongs to another collection than the photo",
                code="person_in_other_collection",
                collection=scope.collection_name(person.collection),
            )
        if face.embedding is None or face.reason is not None or not photo.space:
            raise ConflictError(
                f"face {index} of photo {photo_id!r} cannot be enrolled ({face.reason})",
                code="photo_face_unusable",
                reason=face.reason,
            )
        if face.enrolled_face_id is not None:
            raise ConflictError(
                f"face {index} of photo {photo_id!r} is already an enrolled face",
                code="photo_face_enrolled",
            )
        other = next((f for f in photo.faces if f.person_id == person.id and f.id != face.id), None)
        if other is not None and other.status == CONFIRMED:
            raise ConflictError(
                f"person {person_id!r} is already face {other.index} of this photo",
                code="person_already_in_photo",
                face_index=other.index,
            )
        if other is not None:  # the user's word beats the automatic tag of another face
            await self.repository.set_tag(other.id, None, UNKNOWN, "assignment")
        await self._ensure_space(photo)
        new = new_face_of(face, photo.image_sha256)
        _, added = await self.repository.enroll_faces(person.id, [(face, new)])
        await self._enrolled(person.id)
        return await self._view(photo.id), added[0]

    async def reject(
        self, scope: TenantScope, photo_id: str, index: int, person_id: str
    ) -> PhotoView:
        """ "This face is not X": stored; X is never proposed for this face again."""
        photo, face = await self._face(scope, photo_id, index)
        person = await self._own_person(scope, person_id)
        if face.person_id == person.id and face.status == CONFIRMED:
            raise ConflictError(
                f"face {index} is confirmed as {person_id!r}; erase that face of the person first",
                code="photo_face_confirmed",
            )
        await self.repository.reject(face, person.id)
        if face.person_id == person.id:
            await self._cluster(photo, [face.id])
        return await self._view(photo.id)
