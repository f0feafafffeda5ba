"""Tagging photos: a posted photo tagged and stored, a stored photo re-tagged against the gallery
as it is now, and the ``photo.tagged`` event either publishes."""

from __future__ import annotations

from typing import Any

from facerec.domain.identification import Match
from facerec.domain.open_set import Candidate, operating_point, rank
from facerec.domain.photo_service_base import PhotoServiceBase, photo_key
from facerec.domain.photo_views import PhotoView
from facerec.domain.tagging import TagOptions, assign
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.errors import ConflictError, NotFoundError
from facerec.events.bus import PHOTO_TAGGED, Event
from facerec.storage.photo_records import (
    CONFIRMED,
    TAGGED,
    UNKNOWN,
    NewPhoto,
    NewPhotoFace,
    Photo,
    StoredCandidate,
)


class PhotoTaggingService(PhotoServiceBase):
    """Photos tagged and stored, and re-tagged."""

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
                    candidates=tuple(
                        _stored_candidate(m, j, is_match=m.is_match)
                        for j, m in enumerate(tag.candidates)
                    ),
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
        await self.identification.repository.require_collection(collection)
        size = await self.identification.searcher.gallery_size(collection, space)
        point = operating_point(
            embedder,
            gallery_size=size.persons,
            comparisons=size.faces,
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
                _stored_candidate(c, j, is_match=c.distance <= point.distance_threshold)
                for j, c in enumerate(found[:top_k])
            ]
        await self.repository.retag(photo.id, tags, candidates)
        await self._cluster(photo, [f for f, (p, _, _) in tags.items() if p is None])
        view = await self._view(photo.id, point)
        self._publish(scope, view)
        return view

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


def _stored_candidate(
    found: Candidate | Match, position: int, *, is_match: bool
) -> StoredCandidate:
    return StoredCandidate(
        person_id=found.person_id,
        rank=position,
        similarity=found.similarity,
        distance=found.distance,
        nearest_distance=found.nearest_distance,
        faces=found.faces,
        is_match=is_match,
        matched_face_id=found.face_id,
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
