"""The state and steps every photo use case shares: the stores and services it works with,
tenant-checked lookups of photos, faces and persons, the view of a photo, incremental clustering
of new unknown faces, and the bookkeeping after photo faces are enrolled.

The use cases are mixins on :class:`PhotoServiceBase`, put together as
:class:`~facerec.domain.photos.PhotoService`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facerec.domain import clustering
from facerec.domain.open_set import OperatingPoint
from facerec.domain.persons import PersonService
from facerec.domain.photo_views import PhotoView
from facerec.domain.tagging import TaggingService
from facerec.domain.tenancy import TenantScope
from facerec.errors import ConflictError, NotFoundError
from facerec.events.bus import EventBus
from facerec.storage.models import EmbeddingSpace, NewFace, check_id, new_id
from facerec.storage.photo_records import Photo, PhotoFace
from facerec.storage.photos import PhotoRepository
from facerec.values import Erasure, Person, qualify


class PhotoServiceBase:
    """The stores and services of the photo use cases, and the steps they share."""

    def __init__(
        self,
        *,
        repository: PhotoRepository,
        tagging: TaggingService,
        persons: PersonService,
        events: EventBus,
        store_images: bool = False,
    ) -> None:
        self.repository = repository
        self.tagging = tagging
        self.identification = tagging.identification
        self.queries = tagging.queries
        self.persons = persons
        self.events = events
        self.store_images = store_images

    async def _own(
        self, scope: TenantScope, photo_id: str, *, with_embeddings: bool = False
    ) -> Photo:
        photo = await self.repository.get_photo(
            photo_key(scope, photo_id), with_embeddings=with_embeddings
        )
        scope.collection_key(scope.collection_name(photo.collection))  # 403 for a limited key
        return photo

    async def _own_person(self, scope: TenantScope, person_id: str) -> Person:
        person = await self.persons.repository.get_person(scope.person_key(person_id))
        scope.collection_key(scope.collection_name(person.collection))
        return person

    async def _face(
        self, scope: TenantScope, photo_id: str, index: int, *, with_embeddings: bool = False
    ) -> tuple[Photo, PhotoFace]:
        photo = await self._own(scope, photo_id, with_embeddings=with_embeddings)
        face = next((f for f in photo.faces if f.index == index), None)
        if face is None:
            raise NotFoundError(
                f"photo {photo_id!r} has no face {index} ({len(photo.faces)} faces)",
                code="photo_face_not_found",
                faces=len(photo.faces),
            )
        return photo, face

    async def _view(self, key: str, point: OperatingPoint | None = None) -> PhotoView:
        photo = await self.repository.get_photo(key)
        wanted = {f.person_id for f in photo.faces if f.person_id}
        wanted |= {c.person_id for f in photo.faces for c in f.candidates}
        records = await self.persons.persons(sorted(wanted))
        return PhotoView(photo, records, point)

    async def _cluster(self, photo: Photo, new_face_ids: Sequence[str]) -> None:
        """Incremental clustering of the photo's new unknown faces in its slice."""
        if not new_face_ids or not photo.embedder or not photo.space:
            return
        embedder = self.queries.embedder(photo.embedder)
        faces = await self.repository.unknown_faces(photo.collection, photo.space)
        faces = [f for f in faces if f.embedding is not None]
        if not faces:
            return
        wanted = set(new_face_ids)
        new = [i for i, f in enumerate(faces) if f.id in wanted]
        params = clustering.ClusterParams(embedder.metric, embedder.distance_threshold)
        vectors = np.stack([f.embedding for f in faces if f.embedding is not None])
        labels = clustering.update(vectors, [f.cluster_id for f in faces], new, params, new_id)
        await self.repository.set_clusters(
            {f.id: label for f, label in zip(faces, labels, strict=True) if label != f.cluster_id}
        )

    async def _ensure_space(self, photo: Photo) -> None:
        embedder = self.queries.embedder(photo.embedder or "")
        await self.identification.repository.ensure_space(
            EmbeddingSpace(photo.space or "", embedder.dim, embedder.metric)  # type: ignore[arg-type]
        )

    async def _enrolled(self, person_id: str) -> None:
        await self.persons.cache.purge(Erasure(updated_person_ids=(person_id,)))
        await self.persons.searcher.sync()


def photo_key(scope: TenantScope, photo_id: str) -> str:
    """The stored key of a photo id (validated, ``invalid_photo_id``) in the caller's tenant."""
    return qualify(scope.tenant, check_id(photo_id, "photo"))


def new_face_of(face: PhotoFace, image_sha256: str | None) -> NewFace:
    if face.embedding is None or face.space is None:  # pragma: no cover - checked by callers
        raise ConflictError("this face has no embedding", code="photo_face_unusable")
    return NewFace(
        space=face.space,
        embedding=face.embedding,
        quality=face.quality,
        bbox=face.bbox,
        image_sha256=image_sha256,
    )
