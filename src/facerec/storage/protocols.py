"""Storage protocols: the gallery repository, what the vector indexes read, and vector search.

``SqlGalleryRepository`` implements :class:`GalleryRepository` and :class:`IndexSource` on SQLite
and PostgreSQL. ``IndexRegistry`` (in-process exact/HNSW) and ``PgVectorSearcher`` implement
:class:`FaceSearcher`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from facerec.storage.models import (
    EmbeddingSpace,
    NewFace,
    NewPerson,
    PersonPage,
    PersonPatch,
    Registration,
    SearchHit,
)
from facerec.values import Collection, Erasure, Face, Metric, Person

ChangeOp = Literal["face_add", "face_remove", "person_upsert", "person_remove", "collection_remove"]
# The ops that erase data (faces, persons, whole collections).
ERASING_OPS: frozenset[str] = frozenset({"face_remove", "person_remove", "collection_remove"})


@dataclass(frozen=True)
class Change:
    """One row of the change log, written in the transaction of the change it records."""

    seq: int
    op: ChangeOp
    person_id: str | None
    face_id: str | None
    collection: str | None
    space: str | None


@dataclass(frozen=True)
class LogState:
    last_seq: int  # highest committed seq, 0 for an empty log
    pruned_through: int  # rows with seq <= this may be gone: older positions must rebuild


@dataclass(frozen=True)
class IndexRows:
    """Faces of one (collection, space): ids, owners and a (n, dim) float32 matrix."""

    face_ids: list[str]
    person_ids: list[str]
    vectors: NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class GallerySize:
    """Who a search of one (collection, space) can find: persons with a face there, and faces."""

    persons: int
    faces: int


@dataclass(frozen=True)
class FaceVector:
    face_id: str
    person_id: str
    collection: str
    space: str
    vector: NDArray[np.float32] = field(repr=False)


class GalleryRepository(Protocol):
    """Persons, faces and collections. Every method is one transaction."""

    async def create_collection(self, name: str, description: str = "") -> Collection: ...
    async def list_collections(self, *, tenant: str | None = None) -> list[Collection]: ...
    async def ensure_collection(self, name: str, description: str = "") -> None: ...
    async def get_collection(self, name: str) -> Collection: ...
    async def require_collection(self, name: str) -> None:
        """Raise ``collection_not_found`` unless it exists (one key lookup, no counting)."""
        ...

    async def space_counts(self, collection: str) -> dict[str, int]: ...
    async def delete_collection(self, name: str, *, force: bool = False) -> Erasure: ...

    async def ensure_space(self, space: EmbeddingSpace) -> EmbeddingSpace: ...
    async def get_space(self, name: str) -> EmbeddingSpace: ...

    async def create_person(self, person: NewPerson) -> Person: ...
    async def get_person(self, person_id: str) -> Person: ...
    async def get_persons(self, person_ids: Sequence[str]) -> dict[str, Person]: ...
    async def faces_of(self, person_ids: Sequence[str], space: str) -> list[Face]: ...
    async def get_person_by_employee_id(
        self, employee_id: str, collection: str = ...
    ) -> Person: ...
    async def list_persons(
        self,
        *,
        collection: str | None = None,
        name: str | None = None,
        employee_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
        collections_in: Sequence[str] | None = None,
    ) -> PersonPage: ...
    async def update_person(self, person_id: str, patch: PersonPatch) -> Person: ...
    async def delete_person(self, person_id: str) -> Erasure: ...

    async def add_faces(
        self, person_id: str, faces: Sequence[NewFace], *, create: NewPerson | None = None
    ) -> list[Face]: ...
    async def list_faces(self, person_id: str, *, with_embeddings: bool = False) -> list[Face]: ...
    async def get_face(self, face_id: str, *, with_embeddings: bool = False) -> Face: ...
    async def delete_face(self, face_id: str) -> Erasure: ...
    async def register_person(
        self, person: NewPerson, faces: Sequence[NewFace], *, replace: bool = False
    ) -> Registration: ...


class IndexSource(Protocol):
    """What an in-process index needs from the database to build and follow the gallery."""

    async def log_state(self) -> LogState: ...
    async def instance_id(self) -> int:
        """A random id fixed when the database was created (0 if unknown)."""
        ...

    async def changes_since(self, seq: int, limit: int) -> list[Change]: ...
    async def index_rows(self, collection: str, space: str) -> IndexRows: ...
    async def index_keys(self) -> list[tuple[str, str]]:
        """Every (collection, space) that has faces."""
        ...

    async def face_vectors(self, face_ids: Iterable[str]) -> list[FaceVector]: ...
    async def get_space(self, name: str) -> EmbeddingSpace: ...


@runtime_checkable
class FaceSearcher(Protocol):
    # True when every search first applies the change log and reports the persons it changed
    # (``on_persons_changed``): only then may a process keep copies of persons' faces
    # (facerec.domain.templates), since another process's erasure then reaches them.
    applies_change_log: bool

    async def search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int = 1
    ) -> list[SearchHit]:
        """Up to ``k`` persons, nearest first, each with its nearest face; never mixes spaces."""
        ...

    async def search_many(
        self, collection: str, space: str, queries: Sequence[NDArray[np.float32]], k: int = 1
    ) -> list[list[SearchHit]]:
        """:meth:`search` for each query, in order, catching up with other processes' changes
        once for them all (a batch's duplicate checks)."""
        ...

    async def count(self, collection: str, space: str) -> int:
        """Faces of one (collection, space): how many comparisons a search makes."""
        ...

    async def gallery_size(self, collection: str, space: str) -> GallerySize:
        """Persons and faces of one (collection, space), without counting rows per request."""
        ...

    async def warm(self) -> int:
        """Build or load every index before the service says it is ready; returns how many."""
        ...

    async def sync(self) -> int:
        """Catch up with changes from any process (search does it too). Call it after an
        erasure so that index snapshots holding the erased faces are removed at once."""
        ...

    async def close(self) -> None: ...


class VectorIndex(Protocol):
    """An in-process index of one (collection, space), keyed by face id."""

    dim: int
    metric: Metric

    def __len__(self) -> int: ...
    def __contains__(self, face_id: object) -> bool: ...
    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Add rows; an id already present is replaced."""
        ...

    def remove(self, ids: Iterable[str]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were present."""
        ...

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        """The ``k`` nearest ids and their distances (L2, or 1 - cos), nearest first."""
        ...


class PersistentVectorIndex(VectorIndex, Protocol):
    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...
