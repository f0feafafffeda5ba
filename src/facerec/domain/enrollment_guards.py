"""The two template guards of enrollment: inconsistent faces and duplicate identities.

- inconsistent: a face whose distance to every other face of the same person exceeds the model's
  1:1 threshold (a false non-match rate of a few percent at most for genuine pairs, so a genuine
  new photo is rarely flagged, while a different person almost always is);
- duplicate: a new person whose face is within the *strict* distance of another person of the
  collection: the distance at a false-match rate of :data:`DUPLICATE_FMR` per comparison by the
  model's calibration (never looser than its 1:1 threshold; the 1:1 threshold when it has none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.domain.inline_gallery import distances
from facerec.domain.persons import PersonService
from facerec.inference.base import FaceEmbedder
from facerec.storage.protocols import FaceSearcher, GalleryRepository

DUPLICATE_FMR = 1e-5


@dataclass(frozen=True)
class GuardResult:
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def duplicate_threshold(embedder: FaceEmbedder) -> float:
    calibration = embedder.calibration
    if calibration is None:
        return embedder.distance_threshold
    return min(calibration.distance_at_fmr(DUPLICATE_FMR), embedder.distance_threshold)


class Guards:
    def __init__(
        self,
        *,
        embedders: Callable[[str], FaceEmbedder],
        repository: GalleryRepository,
        searcher: FaceSearcher,
        persons: PersonService,
    ) -> None:
        self._model = embedders  # name → FaceEmbedder (QueryRunner.embedder)
        self.repository = repository
        self.searcher = searcher
        self.persons = persons

    async def inconsistent(
        self, person_id: str, space: str, vectors: Sequence[NDArray[np.float32]], embedder: str
    ) -> GuardResult | None:
        """A new face far from every face the person already has in ``space``."""
        model = self._model(embedder)
        enrolled = await self.repository.faces_of([person_id], space)
        rows = [f.embedding for f in enrolled if f.embedding is not None]
        if not rows:
            return None
        matrix = np.stack(rows)
        nearest = min(float(distances(matrix, v, model.metric).min()) for v in vectors)
        if nearest <= model.distance_threshold:
            return None
        return GuardResult(
            "inconsistent_with_person",
            "this face is far from every face enrolled for this person: it may be someone else",
            {
                "person_id": person_id,
                "distance": round(nearest, 4),
                "threshold": model.distance_threshold,
                "faces_compared": len(rows),
            },
        )

    async def duplicate(
        self,
        collection: str,
        space: str,
        vectors: Sequence[NDArray[np.float32]],
        embedder: str,
        exclude: str | None = None,
    ) -> GuardResult | None:
        """Another person of the collection that these faces already match strictly."""
        model = self._model(embedder)
        limit = duplicate_threshold(model)
        best: tuple[float, str] | None = None
        for hits in await self.searcher.search_many(collection, space, vectors, 2):
            for hit in hits:
                if hit.person_id != exclude and (best is None or hit.distance < best[0]):
                    best = (hit.distance, hit.person_id)
        if best is None or best[0] > limit:
            return None
        distance, person_id = best
        person = await self.persons.person(person_id)
        return GuardResult(
            "possible_duplicate",
            "this face already matches another person of this collection (details): "
            "the same person may be enrolled twice",
            {
                "person_id": person_id,
                "person_name": person.name if person is not None else None,
                "distance": round(distance, 4),
                "similarity": round(model.similarity(distance), 4),
                "threshold": round(limit, 4),
            },
        )

    def outliers(
        self, vectors: Sequence[NDArray[np.float32]], embedder: str
    ) -> dict[int, GuardResult]:
        """Photos of one registration far from every other photo of it (positions → result).

        With two photos that disagree neither can be told the odd one out: both are flagged.
        """
        if len(vectors) < 2:
            return {}
        model = self._model(embedder)
        matrix = np.stack(vectors).astype(np.float32)
        flagged: dict[int, GuardResult] = {}
        for i, vector in enumerate(vectors):
            dists = distances(matrix, vector, model.metric)
            others = np.delete(dists, i)
            nearest = float(others.min())
            if nearest > model.distance_threshold:
                flagged[i] = GuardResult(
                    "inconsistent_with_person",
                    "this photo is far from every other photo sent for this person: "
                    "it may be someone else",
                    {"distance": round(nearest, 4), "threshold": model.distance_threshold},
                )
        return flagged
