"""Gallery services: enrollment, 1:N identification, 1:1 verification, persons and erasure.

Async orchestration only: blocking work (decode, detect, embed) goes to the inference executor,
storage through the repository protocol, search through the searcher, caching through the cache
protocol. Every cached copy of a person is purged when the person or a face is erased.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.cache.base import (
    image_result_key,
)
from facerec.domain.faces import (
    FaceOptions,
    FacePipeline,
    FaceProbe,
    ProcessingMode,
    image_digest,
)
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.timing import StageTimer
from facerec.errors import (
    ConflictError,
    FaceRecError,
    FaceRejectedError,
    InvalidInputError,
    NotFoundError,
)
from facerec.executor import InferenceExecutor
from facerec.inference.base import FaceEmbedder
from facerec.storage.models import (
    EmbeddingSpace,
    NewFace,
    NewPerson,
    PersonPatch,
    SearchHit,
    as_vector,
    check_collection_name,
    check_id,
)
from facerec.storage.protocols import FaceSearcher, GalleryRepository
from facerec.values import Erasure, Person

logger = logging.getLogger(__name__)

MAX_INLINE_PERSONS = 10_000
MAX_INLINE_VECTORS = 100


@dataclass(frozen=True)
class RecognizeOptions:
    gallery: str | Mapping[str, Sequence[Sequence[float]]] | None = None
    model: str | None = "auto"
    top_k: int = 5
    similarity_threshold: float = 0.5
    mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = None
    min_quality: float = 0.0


@dataclass(frozen=True)
class Match:
    person_id: str
    person: Person | None
    face_id: str | None
    distance: float
    similarity: float
    margin: float | None
    is_match: bool


@dataclass(frozen=True)
class Recognition:
    probe: FaceProbe
    matches: list[Match]
    best: Match | None


@dataclass(frozen=True)
class Verification:
    same: bool
    similarity: float
    distance: float
    threshold: float
    confidence: float
    embedder: str
    probes: tuple[FaceProbe, FaceProbe]


@dataclass(frozen=True)
class ImageOutcome:
    index: int
    probe: FaceProbe | None = None
    error: FaceRecError | None = None


@dataclass(frozen=True)
class Enrollment:
    person: Person
    face_ids: list[str]
    created: bool
    outcomes: list[ImageOutcome] = field(default_factory=list)
    embedder: str = ""


class GalleryService:
    def __init__(
        self,
        *,
        repository: GalleryRepository,
        searcher: FaceSearcher,
        pipeline: FacePipeline,
        executor: InferenceExecutor,
        cache: PersonCache,
        on_cache: Callable[[str], None] | None = None,
        liveness_default: bool = False,
        max_images: int = 20,
    ) -> None:
        self.repository = repository
        self.searcher = searcher
        self.pipeline = pipeline
        self.executor = executor
        self.cache = cache
        self._on_cache: Callable[[str], None] = on_cache or (lambda result: None)
        self.liveness_default = liveness_default
        self.max_images = max_images

    def _options(
        self,
        model: str | None,
        mode: ProcessingMode,
        *,
        enrollment: bool,
        check_liveness: bool | None,
        min_quality: float = 0.0,
    ) -> FaceOptions:
        return FaceOptions(
            embedder=model,
            mode=mode,
            quality_bar=enrollment,
            min_quality=min_quality,
            check_liveness=self.liveness_default if check_liveness is None else check_liveness,
        )

    async def _probe(self, image: bytes, options: FaceOptions, timer: StageTimer) -> FaceProbe:
        """The face of a query image, from the recent-results cache when the same image was seen
        with the same models (liveness is never cached: it is always judged afresh)."""
        if options.check_liveness:
            return await self.executor.run(self.pipeline.probe, image, options, timer)
        detector = self.pipeline.detector_name(options.detector)
        embedder = self.pipeline.embedder_name(options.embedder)
        digest = image_digest(image)
        key = image_result_key(digest, detector, f"{embedder}+{options.mode.value}")
        with timer.stage("cache"):
            cached = await self.cache.get_probe(key)
        if cached is not None and cached.quality.score >= options.min_quality:
            self._on_cache("hit")
            return cached
        self._on_cache("miss")
        probe = await self.executor.run(self.pipeline.probe, image, options, timer, digest)
        await self.cache.put_probe(key, probe)
        return probe

    async def _space(self, probe: FaceProbe) -> EmbeddingSpace:
        model = self.pipeline.embedder(probe.embedder)
        return await self.repository.ensure_space(
            EmbeddingSpace(name=model.space, dim=model.dim, metric=_metric(model))
        )

    # --- enrollment ---------------------------------------------------------------------------

    async def add_face(
        self,
        *,
        image: bytes,
        person_name: str,
        person_id: str | None,
        model: str | None,
        metadata: Mapping[str, Any] | None,
        collection: str,
        mode: ProcessingMode,
        check_liveness: bool | None,
        timer: StageTimer,
    ) -> tuple[Person, str, FaceProbe]:
        check_collection_name(collection)
        if person_id is not None:
            check_id(person_id, "person")
        options = self._options(model, mode, enrollment=True, check_liveness=check_liveness)
        probe = await self.executor.run(self.pipeline.probe, image, options, timer)
        space = await self._space(probe)
        new_face = NewFace(
            space=space.name,
            embedding=probe.embedding,
            quality=probe.quality.score,
            bbox=probe.detection.bbox,
            image_sha256=probe.image_sha256,
        )
        create = NewPerson(
            name=person_name,
            collection=collection,
            id=person_id,
            metadata=dict(metadata or {}),
        )
        with timer.stage("store"):
            if person_id is None:
                person = await self.repository.create_person(create)
                faces = await self.repository.add_faces(person.id, [new_face])
            else:
                faces = await self.repository.add_faces(person_id, [new_face], create=create)
            person = await self.repository.get_person(faces[0].person_id)
        await self.cache.purge(Erasure(updated_person_ids=(person.id,)))
        return person, faces[0].id, probe

    async def register_multiple(
        self,
        *,
        images: Sequence[bytes],
        person: NewPerson,
        model: str | None,
        mode: ProcessingMode,
        replace: bool,
        check_liveness: bool | None,
        timer: StageTimer,
    ) -> Enrollment:
        if not images:
            raise InvalidInputError("images is empty: send at least one photo", code="no_images")
        if len(images) > self.max_images:
            raise InvalidInputError(
                f"{len(images)} images sent; at most {self.max_images} per request",
                code="too_many_images",
                limit=self.max_images,
            )
        check_collection_name(person.collection)
        if not replace:
            try:
                existing = await self.repository.get_person_by_employee_id(person.employee_id or "")
            except NotFoundError:
                existing = None
            if existing is not None:
                raise ConflictError(
                    f"employee {person.employee_id!r} is already registered; send replace=true "
                    "to replace it",
                    code="duplicate_employee_id",
                    employee_id=person.employee_id,
                    person_id=existing.id,
                )
        options = self._options(model, mode, enrollment=True, check_liveness=check_liveness)
        outcomes: list[ImageOutcome] = []
        for index, data in enumerate(images):
            try:
                probe = await self.executor.run(self.pipeline.probe, data, options, timer)
                outcomes.append(ImageOutcome(index, probe=probe))
            except InvalidInputError as exc:  # this image's fault; model or load errors propagate
                outcomes.append(ImageOutcome(index, error=exc))
        accepted = [o.probe for o in outcomes if o.probe is not None]
        if not accepted:
            raise FaceRejectedError(
                "no image had a usable face; nothing was registered",
                code="no_usable_images",
                results=[
                    {
                        "index": o.index,
                        "reason": o.error.code if o.error else "",
                        "message": o.error.message if o.error else "",
                    }
                    for o in outcomes
                ],
            )
        space = await self._space(accepted[0])
        faces = [
            NewFace(
                space=space.name,
                embedding=probe.embedding,
                quality=probe.quality.score,
                bbox=probe.detection.bbox,
                image_sha256=probe.image_sha256,
            )
            for probe in accepted
        ]
        with timer.stage("store"):
            registration = await self.repository.register_person(person, faces, replace=replace)
        await self.cache.purge(
            Erasure(
                updated_person_ids=(registration.person.id,),
                face_ids=registration.removed.face_ids,
                image_sha256s=registration.removed.image_sha256s,
            )
        )
        return Enrollment(
            person=registration.person,
            face_ids=[f.id for f in registration.faces],
            created=registration.created,
            outcomes=outcomes,
            embedder=accepted[0].embedder,
        )

    # --- identification -----------------------------------------------------------------------

    async def recognize(
        self, *, image: bytes, request: RecognizeOptions, timer: StageTimer
    ) -> Recognition:
        gallery, model, top_k = request.gallery, request.model, request.top_k
        similarity_threshold = request.similarity_threshold
        options = self._options(
            model,
            request.mode,
            enrollment=False,
            check_liveness=request.check_liveness,
            min_quality=request.min_quality,
        )
        if isinstance(gallery, str) or gallery is None:
            collection = check_collection_name(gallery or "default")
            await self.repository.get_collection(collection)  # 404 before any inference
        embedder = self.pipeline.embedder(model)
        inline = None
        if gallery is not None and not isinstance(gallery, str):
            inline = _inline_gallery(gallery, embedder.dim)
        probe = await self._probe(image, options, timer)
        with timer.stage("search"):
            if inline is not None:
                hits = _search_inline(inline, probe.embedding, embedder, top_k + 1)
            else:
                hits = await self.searcher.search(
                    collection, probe.space, probe.embedding, top_k + 1
                )
        matches = await self._matches(hits, embedder, similarity_threshold, top_k, inline is None)
        best = matches[0] if matches and matches[0].is_match else None
        return Recognition(probe=probe, matches=matches, best=best)

    async def _matches(
        self,
        hits: list[SearchHit],
        embedder: FaceEmbedder,
        threshold: float,
        top_k: int,
        stored: bool,
    ) -> list[Match]:
        sims = [embedder.similarity(h.distance) for h in hits]
        result = []
        for i, hit in enumerate(hits[:top_k]):
            person = await self.person(hit.person_id) if stored else None
            margin = sims[i] - sims[i + 1] if i + 1 < len(hits) else None
            result.append(
                Match(
                    person_id=hit.person_id,
                    person=person,
                    face_id=hit.face_id if stored else None,
                    distance=hit.distance,
                    similarity=sims[i],
                    margin=margin,
                    is_match=sims[i] >= threshold,
                )
            )
        return result

    async def person(self, person_id: str) -> Person | None:
        cached = await self.cache.get_person(person_id)
        if cached is not None:
            return cached
        try:
            person = await self.repository.get_person(person_id)
        except NotFoundError:
            return None  # erased between search and lookup
        await self.cache.put_person(person)
        return person

    # --- verification -------------------------------------------------------------------------

    async def compare(
        self,
        *,
        first: bytes,
        second: bytes,
        model: str | None,
        mode: ProcessingMode,
        timer: StageTimer,
    ) -> Verification:
        options = self._options(model, mode, enrollment=False, check_liveness=False)
        a = await self._probe(first, options, timer)
        b = await self._probe(second, options, timer)
        embedder = self.pipeline.embedder(a.embedder)
        distance = embedder.distance(a.embedding, b.embedding)
        similarity = embedder.similarity(distance)
        same = distance <= embedder.distance_threshold
        return Verification(
            same=same,
            similarity=similarity,
            distance=distance,
            threshold=embedder.distance_threshold,
            confidence=similarity if same else 1.0 - similarity,
            embedder=a.embedder,
            probes=(a, b),
        )

    # --- persons ------------------------------------------------------------------------------

    async def update_person(self, person_id: str, patch: PersonPatch) -> Person:
        person = await self.repository.update_person(person_id, patch)
        await self.cache.purge(Erasure(updated_person_ids=(person_id,)))
        return person

    async def _erased(self, erasure: Erasure) -> Erasure:
        """After a delete: purge cached copies, and let the index drop the vectors now (its
        snapshot files included), not at the next search."""
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


def _metric(model: FaceEmbedder) -> Any:
    return "cosine" if model.metric == "cosine" else "l2"


def _inline_gallery(
    gallery: Mapping[str, Sequence[Sequence[float]]], dim: int
) -> tuple[list[str], NDArray[np.float32]]:
    if not gallery:
        raise InvalidInputError("the inline gallery is empty", code="empty_gallery")
    if len(gallery) > MAX_INLINE_PERSONS:
        raise InvalidInputError(
            f"inline galleries hold at most {MAX_INLINE_PERSONS} persons", code="gallery_too_large"
        )
    owners: list[str] = []
    rows: list[NDArray[np.float32]] = []
    for person_id, vectors in gallery.items():
        if not vectors or len(vectors) > MAX_INLINE_VECTORS:
            raise InvalidInputError(
                f"person {person_id!r} needs 1-{MAX_INLINE_VECTORS} embeddings",
                code="invalid_gallery",
                person_id=person_id[:80],
            )
        for vector in vectors:
            rows.append(as_vector(np.asarray(vector, dtype=np.float32), dim))
            owners.append(person_id)
    return owners, np.vstack(rows)


def _search_inline(
    inline: tuple[list[str], NDArray[np.float32]],
    query: NDArray[np.float32],
    embedder: FaceEmbedder,
    k: int,
) -> list[SearchHit]:
    owners, matrix = inline
    if embedder.metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        distances = 1.0 - (matrix @ query) / np.maximum(norms, 1e-12)
    else:
        distances = np.linalg.norm(matrix - query[None, :], axis=1)
    best: dict[str, float] = {}
    for owner, distance in zip(owners, distances.tolist(), strict=True):
        if owner not in best or distance < best[owner]:
            best[owner] = distance
    ranked = sorted(best.items(), key=lambda item: item[1])[:k]
    return [SearchHit(person_id=p, face_id="", distance=d) for p, d in ranked]
