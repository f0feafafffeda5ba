"""1:N identification, open set: search → templates → operating point → decision.

The subject of the query photo (most prominent face; others never make it fail) is searched in
one collection's embedding space (or an inline gallery); the nearest persons are scored from all
their faces (:func:`facerec.domain.open_set.fused_distance`) and the open-set rule decides at the
requested operating point (``target_fpir`` for the gallery's size, or a fixed
``similarity_threshold``). Person records for the hits come in one batched lookup.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from facerec.domain.inline_gallery import InlineGallery, distances, parse_inline_gallery
from facerec.domain.open_set import (
    DEFAULT_MIN_MARGIN,
    Candidate,
    Decision,
    OperatingPoint,
    TemplateFace,
    decide,
    fused_distance,
    operating_point,
    rank,
)
from facerec.domain.persons import PersonService
from facerec.domain.probes import Analysis, FaceProbe, ProcessingMode
from facerec.domain.queries import QueryRunner
from facerec.domain.timing import StageTimer
from facerec.inference.base import FaceEmbedder
from facerec.storage.models import DEFAULT_COLLECTION, check_collection_key
from facerec.storage.protocols import FaceSearcher, GalleryRepository
from facerec.values import Person

# Persons fetched from the index beyond top_k, so that template scores can re-rank them.
RERANK_EXTRA = 5


@dataclass(frozen=True)
class RecognizeOptions:
    gallery: str | Mapping[str, Sequence[Sequence[float]]] | None = None
    model: str | None = "auto"
    top_k: int = 5
    target_fpir: float | None = None  # None: the default target (1%)
    similarity_threshold: float | None = None  # set: overrides target_fpir
    min_margin: float = DEFAULT_MIN_MARGIN
    mode: ProcessingMode = ProcessingMode.BALANCED
    check_liveness: bool | None = None
    min_quality: float = 0.0


@dataclass(frozen=True)
class Match:
    person_id: str
    person: Person | None
    face_id: str | None
    distance: float  # the person's template distance
    nearest_distance: float  # its nearest face's distance
    faces: int  # faces in the person's template
    similarity: float
    margin: float | None
    is_match: bool  # clears the operating point's threshold


@dataclass(frozen=True)
class Recognition:
    analysis: Analysis
    matches: list[Match]
    best: Match | None
    decision: Decision
    point: OperatingPoint

    @property
    def probe(self) -> FaceProbe:
        return self.analysis.subject


T = TypeVar("T")


async def beside_collection_check(
    repository: GalleryRepository, collection: str, work: Awaitable[T]
) -> T:
    """``work`` (the photo's analysis) while the database says whether ``collection`` exists:
    the read (a few ms of round trips) no longer waits before the models start. A missing
    collection is still the answer (404) whatever the analysis found or raised; the price is
    one analysis spent on a request naming a collection that does not exist."""
    check = asyncio.ensure_future(repository.require_collection(collection))
    try:
        result = await work
    except asyncio.CancelledError:
        check.cancel()
        raise
    except Exception:
        await check  # its 404 (or 503) comes first
        raise
    await check
    return result


class IdentificationService:
    def __init__(
        self,
        *,
        queries: QueryRunner,
        repository: GalleryRepository,
        searcher: FaceSearcher,
        persons: PersonService,
    ) -> None:
        self.queries = queries
        self.repository = repository
        self.searcher = searcher
        self.persons = persons

    async def recognize(
        self, *, image: bytes, request: RecognizeOptions, timer: StageTimer
    ) -> Recognition:
        gallery = request.gallery
        inline: InlineGallery | None = None
        model = request.model
        if isinstance(gallery, str) or gallery is None:
            model = await self.queries.collection_embedder(gallery or "default", model)
        options = self.queries.subject_options(
            embedder=model,
            mode=request.mode,
            enrollment=False,
            check_liveness=request.check_liveness,
            min_quality=request.min_quality,
        )
        embedder = self.queries.embedder(options.embedder or "")
        collection = ""
        if isinstance(gallery, str) or gallery is None:
            collection = check_collection_key(gallery or DEFAULT_COLLECTION)
            persons = 0  # the index's count, once the space is known
        else:
            inline = parse_inline_gallery(gallery, embedder.dim)
            persons = inline.persons
        work = self.queries.query(image, options, timer)
        if inline is None:
            analysis = await beside_collection_check(self.repository, collection, work)
        else:
            analysis = await work
        query = analysis.subject.vector
        with timer.stage("search"):
            if inline is not None:
                comparisons = len(inline.owners)
                candidates = _inline_candidates(inline, query, embedder)
            else:
                space = analysis.space or ""
                # Kept by the index as the gallery changes: nothing is counted per request.
                size = await self.searcher.gallery_size(collection, space)
                persons, comparisons = size.persons, size.faces
                candidates = await self.candidates(
                    collection, space, query, embedder, request.top_k + RERANK_EXTRA
                )
        point = operating_point(
            embedder,
            gallery_size=persons,
            comparisons=comparisons,
            target_fpir=request.target_fpir,
            similarity_threshold=request.similarity_threshold,
            min_margin=request.min_margin,
        )
        ranked = rank(candidates)
        decision = decide(ranked, point)
        shown = ranked[: request.top_k]
        records = await self.persons.persons([c.person_id for c in shown]) if not inline else {}
        matches = [match_of(ranked, i, records, point) for i in range(len(shown))]
        best = matches[0] if decision.known and matches else None
        return Recognition(
            analysis=analysis, matches=matches, best=best, decision=decision, point=point
        )

    async def candidates(
        self,
        collection: str,
        space: str,
        query: NDArray[np.float32],
        embedder: FaceEmbedder,
        k: int,
    ) -> list[Candidate]:
        """The ``k`` nearest persons of the index, each scored from all its faces."""
        hits = await self.searcher.search(collection, space, query, k)
        if not hits:
            return []
        nearest = {h.person_id: h for h in hits}
        templates = await self.persons.templates(list(nearest), space, embedder.dim)
        candidates = []
        for person_id, hit in nearest.items():
            held = templates.get(person_id)
            if held is None:  # erased between the search and this read
                continue
            dists = distances(held.vectors, query, embedder.metric).tolist()
            qualities = held.qualities.tolist()
            template = [TemplateFace(d, q) for d, q in zip(dists, qualities, strict=True)]
            fused = fused_distance(template)
            candidates.append(
                Candidate(
                    person_id=person_id,
                    face_id=hit.face_id,
                    distance=fused,
                    nearest_distance=min(dists),
                    faces=len(qualities),
                    similarity=embedder.similarity(fused),
                )
            )
        return candidates


def _inline_candidates(
    inline: InlineGallery, query: NDArray[np.float32], embedder: FaceEmbedder
) -> list[Candidate]:
    by_person: dict[str, list[float]] = defaultdict(list)
    for owner, distance in zip(
        inline.owners, distances(inline.vectors, query, embedder.metric).tolist(), strict=True
    ):
        by_person[owner].append(distance)
    candidates = []
    for person_id, dists in by_person.items():
        fused = fused_distance([TemplateFace(d, 100.0) for d in dists])
        candidates.append(
            Candidate(
                person_id=person_id,
                face_id=None,
                distance=fused,
                nearest_distance=min(dists),
                faces=len(dists),
                similarity=embedder.similarity(fused),
            )
        )
    return candidates


def match_of(
    ranked: Sequence[Candidate], position: int, records: Mapping[str, Person], point: OperatingPoint
) -> Match:
    """The ``position``-th candidate of a ranked list as a match at ``point``: its person record,
    and its margin over the next candidate."""
    candidate = ranked[position]
    following = ranked[position + 1] if position + 1 < len(ranked) else None
    return Match(
        person_id=candidate.person_id,
        person=records.get(candidate.person_id),
        face_id=candidate.face_id,
        distance=candidate.distance,
        nearest_distance=candidate.nearest_distance,
        faces=candidate.faces,
        similarity=candidate.similarity,
        margin=candidate.similarity - following.similarity if following else None,
        is_match=candidate.distance <= point.distance_threshold,
    )
