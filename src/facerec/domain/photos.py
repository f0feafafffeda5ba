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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facerec.domain import clustering
from facerec.domain.identification import Match
from facerec.domain.open_set import Candidate, OperatingPoint, operating_point, rank
from facerec.domain.persons import PersonService
from facerec.domain.tagging import TaggingService, TagOptions, assign
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.errors import ConflictError, NotFoundError
from facerec.events.bus import PHOTO_TAGGED, Event, EventBus
from facerec.inference.base import FaceEmbedder
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson, check_id, new_id
from facerec.storage.photos import (
    CONFIRMED,
    TAGGED,
    UNKNOWN,
    NewPhoto,
    NewPhotoFace,
    PersonPhotoPage,
    Photo,
    PhotoErasure,
    PhotoFace,
    PhotoRepository,
    StoredCandidate,
)
from facerec.values import Erasure, Face, Person, qualify


@dataclass(frozen=True)
class PhotoView:
    """A stored photo with the records of the persons it names (erased ones are absent)."""

    photo: Photo
    persons: Mapping[str, Person]
    point: OperatingPoint | None = None  # set when the photo was (re-)tagged by this request

    def candidates(self, face: PhotoFace, top_k: int) -> list[Match]:
        """The face's candidates, best first, without rejected or erased persons."""
        kept = [
            c
            for c in face.candidates
            if c.person_id not in face.rejected and c.person_id in self.persons
        ][:top_k]
        return [
            Match(
                person_id=c.person_id,
                person=self.persons[c.person_id],
                face_id=c.matched_face_id,
                distance=c.distance,
                nearest_distance=c.nearest_distance,
                faces=c.faces,
                similarity=c.similarity,
                margin=c.similarity - kept[i + 1].similarity if i + 1 < len(kept) else None,
                is_match=c.is_match,
            )
            for i, c in enumerate(kept)
        ]

    def person(self, face: PhotoFace) -> Person | None:
        return self.persons.get(face.person_id) if face.person_id else None

    def similarity(self, face: PhotoFace) -> float | None:
        return next((c.similarity for c in face.candidates if c.person_id == face.person_id), None)


@dataclass(frozen=True)
class Suggestion:
    id: str
    collection: str
    space: str
    faces: list[PhotoFace]
    cohesion: float


class PhotoService:
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

    # --- photos -------------------------------------------------------------------------------

    async def add(
        self,
        scope: TenantScope,
        photo_id: str,
        image: bytes,
        options: TagOptions,
        *,
        replace: bool,
        timer: StageTimer,
    ) -> PhotoView:
        """Tag and store a photo (``options.collection``: the stored collection key)."""
        key = photo_key(scope, photo_id)
        if not replace:  # refuse before the inference work
            try:
                await self.repository.get_photo(key)
            except NotFoundError:
                pass
            else:
                raise ConflictError(
                    f"photo {photo_id!r} is already stored; send replace=true to re-tag it",
                    code="photo_exists",
                )
        tagging = await self.tagging.tag(image, options, timer)
        analysis = tagging.analysis
        faces = []
        for tag in tagging.faces:
            probe = tag.probe
            best = tag.best
            faces.append(
                NewPhotoFace(
                    index=probe.index,
                    bbox=probe.detection.bbox,
                    confidence=probe.detection.score,
                    quality=probe.quality.score,
                    quality_reasons=tuple(probe.quality.reasons),
                    reason=tag.reason,
                    embedding=probe.embedding,
                    person_id=best.person_id if best else None,
                    status=TAGGED if best else UNKNOWN,
                    decided_by=tag.decided_by,
                    candidates=tuple(_stored(m, j) for j, m in enumerate(tag.candidates)),
                )
            )
        photo = NewPhoto(
            id=key,
            collection=options.collection,
            space=analysis.space,
            embedder=analysis.embedder,
            detector=analysis.detector,
            image_sha256=analysis.image_sha256,
            width=analysis.image.width,
            height=analysis.image.height,
            format=analysis.image.format,
            options=_options(options),
            image=image if self.store_images else None,
        )
        with timer.stage("store"):
            stored = await self.repository.save_photo(photo, faces, replace=replace)
            if any(f.rejected for f in stored.faces):  # kept from the same image: re-tag
                return await self._retag(scope, stored)
            await self._cluster(stored, [f.id for f in stored.faces if f.person_id is None])
            view = await self._view(key, tagging.point)
        self._publish(scope, view)
        return view

    async def get(self, scope: TenantScope, photo_id: str) -> PhotoView:
        return await self._view((await self._own(scope, photo_id)).id)

    async def delete(self, scope: TenantScope, photo_id: str) -> PhotoErasure:
        """Erase a photo: every record of its faces. Faces it gave to persons stay theirs."""
        photo = await self._own(scope, photo_id)
        erased = await self.repository.delete_photo(photo.id)
        await self.persons.cache.purge(Erasure(image_sha256s=erased.image_sha256s))
        return erased

    async def retag(self, scope: TenantScope, photo_id: str) -> PhotoView:
        """Tag the stored faces again against the gallery as it is now (from the stored
        embeddings: no image needed); confirmed faces keep their person, rejected persons are
        never proposed."""
        photo = await self._own(scope, photo_id, with_embeddings=True)
        return await self._retag(scope, photo)

    async def _retag(self, scope: TenantScope, photo: Photo) -> PhotoView:
        if not any(f.embedding is not None for f in photo.faces):
            photo = await self.repository.get_photo(photo.id, with_embeddings=True)
        space, embedder_name = photo.space, photo.embedder
        if not embedder_name or not space:
            return await self._view(photo.id)
        embedder = self.queries.embedder(embedder_name)
        opts = photo.options
        collection = photo.collection
        gallery = await self.identification.repository.get_collection(collection)
        point = operating_point(
            embedder,
            gallery_size=gallery.person_count,
            comparisons=await self.identification.searcher.count(collection, space),
            target_fpir=opts.get("target_fpir"),
            similarity_threshold=opts.get("similarity_threshold"),
            min_margin=float(opts.get("min_margin", 0.05)),
        )
        top_k = int(opts.get("top_k", 5))
        pinned = {f.person_id for f in photo.faces if f.status == CONFIRMED and f.person_id}
        ranked: list[list[Candidate]] = []
        for face in photo.faces:
            if face.status == CONFIRMED or face.reason is not None or face.embedding is None:
                ranked.append([])
                continue
            found = await self.identification.candidates(
                collection, space, face.embedding, embedder, top_k + 5
            )
            excluded = face.rejected | pinned
            ranked.append([c for c in rank(found) if c.person_id not in excluded])
        assigned, decided = assign(ranked, point)
        tags: dict[str, tuple[str | None, str, str]] = {}
        candidates: dict[str, list[StoredCandidate]] = {}
        for face, found, person, why in zip(photo.faces, ranked, assigned, decided, strict=True):
            if face.status == CONFIRMED:
                continue
            status = UNKNOWN if person is None else TAGGED
            if face.reason is not None or face.embedding is None:
                tags[face.id] = (None, UNKNOWN, face.decided_by)
                continue
            tags[face.id] = (person, status, why)
            candidates[face.id] = [
                StoredCandidate(
                    person_id=c.person_id,
                    rank=j,
                    similarity=c.similarity,
                    distance=c.distance,
                    nearest_distance=c.nearest_distance,
                    faces=c.faces,
                    is_match=c.distance <= point.distance_threshold,
                    matched_face_id=c.face_id,
                )
                for j, c in enumerate(found[:top_k])
            ]
        await self.repository.retag(photo.id, tags, candidates)
        await self._cluster(photo, [f for f, (p, _, _) in tags.items() if p is None])
        view = await self._view(photo.id, point)
        self._publish(scope, view)
        return view

    async def person_photos(
        self, scope: TenantScope, person_id: str, *, limit: int, cursor: str | None
    ) -> PersonPhotoPage:
        person = await self._own_person(scope, person_id)
        return await self.repository.person_photos(person.id, limit=limit, cursor=cursor)

    # --- corrections --------------------------------------------------------------------------

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
        new = _new_face(photo, face)
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

    # --- suggestions --------------------------------------------------------------------------

    async def suggestions(self, scope: TenantScope, collection: str | None) -> list[Suggestion]:
        keys = await self._collections(scope, collection)
        faces = await self.repository.clustered_faces(collections=keys)
        return await self._suggestions(faces)

    async def accept(
        self,
        scope: TenantScope,
        suggestion_id: str,
        *,
        name: str,
        person_id: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[Person, list[Face]]:
        """A suggestion becomes a new person whose faces are the suggestion's (one write)."""
        suggestion = await self._suggestion(scope, suggestion_id)
        photo = await self.repository.get_photo(suggestion.faces[0].photo_id)
        await self._ensure_space(photo)
        key = scope.person_key(person_id) if person_id else qualify(scope.tenant, new_id())
        create = NewPerson(
            name=name, collection=suggestion.collection, id=key, metadata=dict(metadata or {})
        )
        shas = await self._image_shas([f.photo_id for f in suggestion.faces])
        enrolled = [(f, _new_face_of(f, shas.get(f.photo_id))) for f in suggestion.faces]
        person, faces = await self.repository.enroll_faces(key, enrolled, create=create)
        await self._enrolled(person.id)
        return person, faces

    async def dismiss(self, scope: TenantScope, suggestion_id: str) -> int:
        suggestion = await self._suggestion(scope, suggestion_id)
        await self.repository.exclude([f.id for f in suggestion.faces])
        return len(suggestion.faces)

    # --- erasure ------------------------------------------------------------------------------

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

    # --- helpers ------------------------------------------------------------------------------

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

    async def _collections(self, scope: TenantScope, collection: str | None) -> list[str]:
        if collection is not None:
            key = await self.persons.collection_key(scope, collection)
            await self.identification.repository.get_collection(key)  # 404 for another tenant
            return [key]
        return [c.name for c in await self.persons.list_collections(scope)]

    async def _suggestions(self, faces: Sequence[PhotoFace]) -> list[Suggestion]:
        groups: dict[str, list[PhotoFace]] = defaultdict(list)
        for face in faces:
            if face.cluster_id is not None and face.embedding is not None:
                groups[face.cluster_id].append(face)
        result = []
        embedders = await self._embedders({f.photo_id for f in faces})
        for cluster_id, members in groups.items():
            if len(members) < 2:
                continue
            embedder = embedders.get(members[0].photo_id)
            vectors = np.stack([m.embedding for m in members if m.embedding is not None])
            cohesion = (
                clustering.cohesion(vectors, embedder.metric, embedder.similarity)
                if embedder is not None
                else float("nan")
            )
            first = members[0]
            result.append(
                Suggestion(cluster_id, first.collection, first.space or "", members, cohesion)
            )
        return sorted(result, key=lambda s: (-len(s.faces), s.id))

    async def _suggestion(self, scope: TenantScope, suggestion_id: str) -> Suggestion:
        keys = await self._collections(scope, None)
        faces = await self.repository.clustered_faces(collections=keys, cluster_id=suggestion_id)
        found = await self._suggestions(faces)
        if not found:
            raise NotFoundError(
                f"suggestion {suggestion_id!r} not found", code="suggestion_not_found"
            )
        return found[0]

    async def _embedders(self, photo_ids: set[str]) -> dict[str, FaceEmbedder]:
        names = await self.repository.photo_embedders(sorted(photo_ids))
        return {p: self.queries.embedder(name) for p, name in names.items()}

    async def _image_shas(self, photo_ids: Sequence[str]) -> dict[str, str]:
        return await self.repository.photo_image_shas(sorted(set(photo_ids)))

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

    def _publish(self, scope: TenantScope, view: PhotoView) -> None:
        """``photo.tagged``: ids, names and similarities; never an image or an embedding."""
        photo = view.photo
        faces = []
        for face in photo.faces:
            person = view.person(face)
            similarity = view.similarity(face)
            faces.append(
                {
                    "index": face.index,
                    "person_id": scope.person_id(person.id) if person else None,
                    "person_name": person.name if person else None,
                    "similarity": None if similarity is None else round(similarity, 4),
                    "status": face.status if person else UNKNOWN,
                    "decided_by": face.decided_by,
                }
            )
        self.events.publish(
            Event(
                PHOTO_TAGGED,
                scope.tenant,
                scope.collection_name(photo.collection),
                {"photo_id": scope.person_id(photo.id), "faces": faces},
            )
        )


def photo_key(scope: TenantScope, photo_id: str) -> str:
    """The stored key of a photo id (validated, ``invalid_photo_id``) in the caller's tenant."""
    return qualify(scope.tenant, check_id(photo_id, "photo"))


def _stored(match: Match, position: int) -> StoredCandidate:
    return StoredCandidate(
        person_id=match.person_id,
        rank=position,
        similarity=match.similarity,
        distance=match.distance,
        nearest_distance=match.nearest_distance,
        faces=match.faces,
        is_match=match.is_match,
        matched_face_id=match.face_id,
    )


def _options(options: TagOptions) -> dict[str, Any]:
    return {
        "model": options.model,
        "top_k": options.top_k,
        "target_fpir": options.target_fpir,
        "similarity_threshold": options.similarity_threshold,
        "min_margin": options.min_margin,
        "max_faces": options.max_faces,
        "min_quality": options.min_quality,
        "mode": options.mode.value,
    }


def _new_face(photo: Photo, face: PhotoFace) -> NewFace:
    return _new_face_of(face, photo.image_sha256)


def _new_face_of(face: PhotoFace, image_sha256: str | None) -> NewFace:
    if face.embedding is None or face.space is None:  # pragma: no cover - checked by callers
        raise ConflictError("this face has no embedding", code="photo_face_unusable")
    return NewFace(
        space=face.space,
        embedding=face.embedding,
        quality=face.quality,
        bbox=face.bbox,
        image_sha256=image_sha256,
    )
