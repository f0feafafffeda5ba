"""What the photo store holds and returns: stored photos, their faces and candidates, erasures.

Frozen values shared by the storage mixins of :class:`~facerec.storage.photos.PhotoRepository`
and by :mod:`facerec.domain.photos`, the face statuses, and the mapping of candidate rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.errors import NotFoundError
from facerec.storage.models import new_id
from facerec.storage.sql_support import AnyRow
from facerec.values import BBox

PHOTO_EMBEDDING_COLUMN = "photo_faces.embedding"
PHOTO_IMAGE_COLUMN = "photos.image"
MAX_PAGE = 500

# Face statuses.
TAGGED = "tagged"  # the assignment chose the person
CONFIRMED = "confirmed"  # a user confirmed or assigned it (assigned faces are enrolled)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class StoredCandidate:
    person_id: str
    rank: int
    similarity: float
    distance: float
    nearest_distance: float
    faces: int
    is_match: bool
    matched_face_id: str | None = None


@dataclass(frozen=True)
class NewPhotoFace:
    index: int
    bbox: BBox
    confidence: float
    quality: float
    quality_reasons: tuple[str, ...]
    reason: str | None
    embedding: NDArray[np.float32] | None = field(compare=False, repr=False)
    person_id: str | None
    status: str
    decided_by: str
    candidates: tuple[StoredCandidate, ...] = ()
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class NewPhoto:
    id: str  # tenant-qualified key
    collection: str
    space: str | None
    embedder: str | None
    detector: str
    image_sha256: str
    width: int
    height: int
    format: str
    options: Mapping[str, Any]
    image: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PhotoFace:
    id: str
    photo_id: str
    index: int
    collection: str
    space: str | None
    bbox: BBox
    confidence: float
    quality: float
    quality_reasons: tuple[str, ...]
    reason: str | None
    person_id: str | None
    status: str
    decided_by: str
    enrolled_face_id: str | None
    cluster_id: str | None
    excluded: bool
    created_at: datetime
    candidates: tuple[StoredCandidate, ...] = ()
    rejected: frozenset[str] = frozenset()
    embedding: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Photo:
    id: str
    collection: str
    space: str | None
    embedder: str | None
    detector: str
    image_sha256: str
    width: int
    height: int
    format: str
    image_stored: bool
    options: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    faces: tuple[PhotoFace, ...]


@dataclass(frozen=True)
class PersonPhoto:
    """One photo a person is tagged in."""

    photo_id: str
    collection: str
    face_index: int
    status: str
    decided_by: str
    similarity: float | None
    created_at: datetime


@dataclass(frozen=True)
class PersonPhotoPage:
    items: list[PersonPhoto]
    next_cursor: str | None


@dataclass(frozen=True)
class PhotoErasure:
    """What an erasure of photo records removed (for cache purges and responses)."""

    photo_ids: tuple[str, ...] = ()
    face_ids: tuple[str, ...] = ()
    untagged_face_ids: tuple[str, ...] = ()
    image_sha256s: tuple[str, ...] = ()


def photo_not_found(photo_id: str) -> NotFoundError:
    return NotFoundError(f"photo {photo_id!r} not found", code="photo_not_found")


def candidate_row(face_id: str, c: StoredCandidate) -> dict[str, Any]:
    return {
        "face_id": face_id,
        "person_id": c.person_id,
        "rank": c.rank,
        "matched_face_id": c.matched_face_id,
        "similarity": c.similarity,
        "distance": c.distance,
        "nearest_distance": c.nearest_distance,
        "faces": c.faces,
        "is_match": int(c.is_match),
    }


def to_candidate(row: AnyRow) -> StoredCandidate:
    m = row._mapping
    return StoredCandidate(
        person_id=m["person_id"],
        rank=int(m["rank"]),
        similarity=float(m["similarity"]),
        distance=float(m["distance"]),
        nearest_distance=float(m["nearest_distance"]),
        faces=int(m["faces"]),
        is_match=bool(m["is_match"]),
        matched_face_id=m["matched_face_id"],
    )
