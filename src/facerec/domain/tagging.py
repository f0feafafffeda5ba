"""Every face of a photo, identified at once: one identity at most once per photo.

The photo is analysed once (every face detected, quality assessed, all faces embedded in one
batched call); each usable face gets its candidates from the collection (templates, as in
:mod:`facerec.domain.identification`) and the open-set decision at the operating point for the
collection's size. Then the identities are *assigned* over all faces × candidates at once: the
assignment that maximises the total similarity (the Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``) among the pairs the decision accepts, so when two faces
want the same person the weaker one falls to its next candidate or to unknown — never the same
person twice in one photo. Faces too small or below the quality bar are returned with their reason
and no identity, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerec.domain.assignment import optimal_assignment
from facerec.domain.identification import (
    IdentificationService,
    Match,
    beside_collection_check,
    match_of,
)
from facerec.domain.open_set import (
    DEFAULT_MIN_MARGIN,
    Candidate,
    OperatingPoint,
    decide,
    operating_point,
    rank,
)
from facerec.domain.probes import Analysis, AnalysisOptions, FaceChoice, FaceProbe, ProcessingMode
from facerec.domain.timing import StageTimer
from facerec.storage.models import check_collection_key

# Quality reasons that make a face unusable for identification (pose and sharpness problems are
# reported, but a face that can be embedded is still tried).
UNUSABLE = frozenset({"too_small", "low_detector_score"})


@dataclass(frozen=True)
class TagOptions:
    collection: str  # the stored collection key
    model: str | None = "auto"
    top_k: int = 5
    target_fpir: float | None = None
    similarity_threshold: float | None = None
    min_margin: float = DEFAULT_MIN_MARGIN
    max_faces: int = 50
    min_quality: float = 0.0
    mode: ProcessingMode = ProcessingMode.BALANCED
    detector: str | None = "auto"


@dataclass(frozen=True)
class FaceTag:
    """One face of the photo: its candidates and the identity assigned to it (or why none)."""

    probe: FaceProbe
    candidates: list[Match]
    best: Match | None
    reason: str | None = None  # why no identity was tried: too_small, low_quality, ...
    decided_by: str = "threshold"  # threshold | margin | assignment


@dataclass(frozen=True)
class Tagging:
    analysis: Analysis
    faces: list[FaceTag]
    point: OperatingPoint


class TaggingService:
    def __init__(self, identification: IdentificationService) -> None:
        self.identification = identification
        self.queries = identification.queries

    async def options(self, options: TagOptions) -> AnalysisOptions:
        """The analysis of every face, models resolved once (``auto`` per collection)."""
        model = await self.queries.collection_embedder(options.collection, options.model)
        resolved = self.queries.resolve(detector=options.detector, embedder=model)
        return AnalysisOptions(
            detector=resolved.detector,
            embedder=resolved.embedder,
            choice=FaceChoice.ALL,
            mode=options.mode,
            max_faces=options.max_faces,
        )

    async def tag(self, image: bytes, options: TagOptions, timer: StageTimer) -> Tagging:
        collection = check_collection_key(options.collection)

        async def analysed() -> Analysis:
            return await self.queries.analyse(image, await self.options(options), timer)

        repository = self.identification.repository
        analysis = await beside_collection_check(repository, collection, analysed())
        return await self.tag_analysis(analysis, options, timer)

    async def tag_analysis(
        self, analysis: Analysis, options: TagOptions, timer: StageTimer
    ) -> Tagging:
        """Identify every face of an analysed photo (or video frame) against the gallery size
        the index keeps incrementally (no count over the gallery per request or frame)."""
        embedder = self.queries.embedder(analysis.embedder or "")
        space = analysis.space or ""
        searcher = self.identification.searcher
        with timer.stage("search"):
            size = await searcher.gallery_size(options.collection, space)
            comparisons = size.faces
            point = operating_point(
                embedder,
                gallery_size=size.persons,
                comparisons=comparisons,
                target_fpir=options.target_fpir,
                similarity_threshold=options.similarity_threshold,
                min_margin=options.min_margin,
            )
            ranked: list[list[Candidate]] = []
            reasons: list[str | None] = []
            for probe in analysis.probes:
                reason = _unusable(probe, options.min_quality)
                reasons.append(reason)
                if reason is not None or probe.embedding is None:
                    ranked.append([])
                    continue
                found = await self.identification.candidates(
                    options.collection, space, probe.embedding, embedder, options.top_k + 5
                )
                ranked.append(rank(found))
        assigned, decided = assign(ranked, point)
        shown = {c.person_id for r in ranked for c in r[: options.top_k]}
        records = await self.identification.persons.persons(sorted(shown))
        faces = []
        for i, probe in enumerate(analysis.probes):
            candidates = [
                match_of(ranked[i], j, records, point)
                for j, c in enumerate(ranked[i][: options.top_k])
            ]
            chosen = assigned[i]
            best = next((m for m in candidates if m.person_id == chosen), None)
            if chosen is not None and best is None:  # assigned beyond top_k: show it too
                j = next(j for j, c in enumerate(ranked[i]) if c.person_id == chosen)
                best = match_of(ranked[i], j, records, point)
            faces.append(FaceTag(probe, candidates, best, reasons[i], decided[i]))
        return Tagging(analysis=analysis, faces=faces, point=point)


def _unusable(probe: FaceProbe, min_quality: float) -> str | None:
    reasons = set(probe.quality.reasons) & UNUSABLE
    if reasons:
        return sorted(reasons)[0]
    if probe.quality.score < min_quality:
        return "low_quality"
    return None


def assign(
    ranked: list[list[Candidate]], point: OperatingPoint
) -> tuple[list[str | None], list[str]]:
    """The identity of each face (None: unknown) and what decided it.

    A face may take a candidate that clears the threshold; its best candidate only when the
    margin rule accepts it (an ambiguous face stays unknown). Among the allowed pairs the
    assignment maximises the total similarity, each person at most once.
    """
    decided = ["threshold"] * len(ranked)
    people: dict[str, int] = {}
    allowed: list[dict[str, float]] = []
    for i, candidates in enumerate(ranked):
        pairs: dict[str, float] = {}
        decision = decide(candidates, point)
        if decision.decided_by == "margin":
            decided[i] = "margin"
        elif decision.known:
            for c in candidates:
                if c.distance <= point.distance_threshold:
                    pairs[c.person_id] = c.similarity
                    people.setdefault(c.person_id, len(people))
        allowed.append(pairs)
    result: list[str | None] = [None] * len(ranked)
    if not people:
        return result, decided
    scores = np.full((len(ranked), len(people)), -1.0)
    for i, pairs in enumerate(allowed):
        for person, similarity in pairs.items():
            scores[i, people[person]] = similarity
    rows, cols = optimal_assignment(scores, maximize=True)
    names = {index: person for person, index in people.items()}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if scores[i, j] >= 0.0:
            result[i] = names[j]
            if ranked[i] and ranked[i][0].person_id != names[j]:
                decided[i] = "assignment"  # fell to its next candidate
    for i, pairs in enumerate(allowed):
        if pairs and result[i] is None:
            decided[i] = "assignment"  # every candidate went to a stronger face
    return result, decided
