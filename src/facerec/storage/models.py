"""Gallery domain values: frozen dataclasses passed between storage, index and services."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.storage.validation import (
    DEPARTMENT_MAX,
    EMPLOYEE_ID_MAX,
    POSITION_MAX,
    check_metadata,
    check_optional_text,
    check_person_name,
)
from facerec.values import BBox, Erasure, Face, Metric, Person

DEFAULT_COLLECTION: Final = "default"

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
# Stored keys: the same, optionally qualified by a tenant (values.qualify).
_TENANT = r"(?:[a-z0-9][a-z0-9_-]{0,31}~)?"
_COLLECTION_KEY_RE = re.compile(rf"^{_TENANT}[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}$")
_ID_KEY_RE = re.compile(rf"^{_TENANT}[A-Za-z0-9][A-Za-z0-9_.:@-]{{0,63}}$")
_SPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+=-]{0,127}$")


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""A patch field left as UNSET is not changed; None clears an optional field."""


@dataclass(frozen=True)
class NewPerson:
    name: str
    collection: str = DEFAULT_COLLECTION
    id: str | None = None  # None: a UUID is generated
    employee_id: str | None = None
    department: str | None = None
    position: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every write of a person passes here: refuse what could not be stored and returned.
        check_person_name(self.name)
        _check_person_fields(self.employee_id, self.department, self.position)
        check_metadata(self.metadata)


@dataclass(frozen=True)
class StoredChip:
    """A kept face chip as stored: encoded image bytes and the five landmarks in chip pixels."""

    data: bytes = field(repr=False)
    format: str  # "png"
    landmarks: tuple[tuple[float, float], ...]
    origin_id: str | None = None  # the enrolled face it was first kept for; None: this face


@dataclass(frozen=True)
class NewFace:
    space: str
    embedding: NDArray[np.float32] = field(compare=False, repr=False)
    quality: float = 0.0
    bbox: BBox | None = None
    image_sha256: str | None = None
    id: str | None = None  # None: a UUID is generated
    chip: StoredChip | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PersonPatch:
    name: str | _Unset = UNSET
    employee_id: str | _Unset | None = UNSET
    department: str | _Unset | None = UNSET
    position: str | _Unset | None = UNSET
    metadata: Mapping[str, Any] | _Unset = UNSET  # replaces the whole mapping

    def __post_init__(self) -> None:
        if self.name is not UNSET:
            check_person_name(self.name)
        _check_person_fields(
            None if self.employee_id is UNSET else self.employee_id,
            None if self.department is UNSET else self.department,
            None if self.position is UNSET else self.position,
        )
        if self.metadata is not UNSET:
            check_metadata(self.metadata)


def _check_person_fields(
    employee_id: str | None, department: str | None, position: str | None
) -> None:
    check_optional_text(employee_id, "employee_id", EMPLOYEE_ID_MAX)
    check_optional_text(department, "department", DEPARTMENT_MAX)
    check_optional_text(position, "position", POSITION_MAX)


@dataclass(frozen=True)
class PersonPage:
    items: list[Person]
    next_cursor: str | None  # opaque; None when this is the last page


@dataclass(frozen=True)
class EmbeddingSpace:
    """An embedding space: vectors of different spaces are never compared."""

    name: str  # e.g. "dlib_resnet@1"
    dim: int
    metric: Metric


@dataclass(frozen=True)
class SearchHit:
    person_id: str
    face_id: str
    distance: float


def best_per_person(rows: Iterable[tuple[str, str, float]]) -> list[SearchHit]:
    """(person_id, face_id, distance) rows sorted by distance → first hit of each person."""
    seen: set[str] = set()
    hits: list[SearchHit] = []
    for person_id, face_id, distance in rows:
        if person_id not in seen:
            seen.add(person_id)
            hits.append(SearchHit(person_id, face_id, distance))
    return hits


@dataclass(frozen=True)
class Registration:
    person: Person
    faces: list[Face]
    created: bool  # False: an existing person was replaced
    removed: Erasure  # old faces dropped by ``replace=True``


def new_id() -> str:
    return str(uuid.uuid4())


def check_collection_name(name: str) -> str:
    if not _COLLECTION_RE.match(name):
        raise InvalidInputError(
            "collection names are 1-64 characters: letters, digits, '_', '.', '-'",
            code="invalid_collection_name",
            collection=name[:80],
        )
    return name


def check_collection_key(key: str) -> str:
    """A stored collection key: a collection name, optionally qualified by its tenant."""
    if not _COLLECTION_KEY_RE.match(key):
        raise InvalidInputError(
            "collection names are 1-64 characters: letters, digits, '_', '.', '-'",
            code="invalid_collection_name",
            collection=key[:80],
        )
    return key


def check_id_key(value: str, what: str) -> str:
    """A stored id: an id, optionally qualified by its tenant."""
    if not _ID_KEY_RE.match(value):
        raise InvalidInputError(
            f"{what} ids are 1-64 characters: letters, digits, '_', '.', ':', '@', '-'",
            code=f"invalid_{what}_id",
            value=value[:80],
        )
    return value


def check_id(value: str, what: str) -> str:
    if not _ID_RE.match(value):
        raise InvalidInputError(
            f"{what} ids are 1-64 characters: letters, digits, '_', '.', ':', '@', '-'",
            code=f"invalid_{what}_id",
            value=value[:80],
        )
    return value


def check_space_name(name: str) -> str:
    if not _SPACE_RE.match(name):
        raise InvalidInputError(
            "embedding space ids are 1-128 characters: letters, digits, '_.:@/+=-'",
            code="invalid_embedding_space",
            space=name[:140],
        )
    return name


def as_vector(embedding: NDArray[Any], dim: int | None = None) -> NDArray[np.float32]:
    """A contiguous 1-D float32 copy of ``embedding``; rejects NaN/inf and wrong sizes."""
    vector = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).reshape(-1))
    if vector.size == 0 or (dim is not None and vector.size != dim):
        raise InvalidInputError(
            f"embedding has {vector.size} values, expected {dim}",
            code="embedding_dim_mismatch",
            expected=dim,
            got=int(vector.size),
        )
    if not np.isfinite(vector).all():
        raise InvalidInputError("embedding contains NaN or infinity", code="invalid_embedding")
    return vector
