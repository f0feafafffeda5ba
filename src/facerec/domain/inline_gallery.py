"""Galleries sent inline with a recognize request: ``person id → [embeddings]``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.storage.models import as_vector

MAX_INLINE_PERSONS = 10_000
MAX_INLINE_VECTORS = 100


@dataclass(frozen=True)
class InlineGallery:
    owners: list[str]  # person id of each row
    vectors: NDArray[np.float32]  # (rows, dim)

    @property
    def persons(self) -> int:
        return len(set(self.owners))


def parse_inline_gallery(
    gallery: Mapping[str, Sequence[Sequence[float]]], dim: int
) -> InlineGallery:
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
    return InlineGallery(owners, np.vstack(rows))


def distances(
    matrix: NDArray[np.float32], query: NDArray[np.float32], metric: str
) -> NDArray[np.float32]:
    """Distance of ``query`` to every row, as ``FaceEmbedder.distance`` computes it."""
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        return np.asarray(1.0 - (matrix @ query) / np.maximum(norms, 1e-12), dtype=np.float32)
    return np.asarray(np.linalg.norm(matrix - query[None, :], axis=1), dtype=np.float32)
