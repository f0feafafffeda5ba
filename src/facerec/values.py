"""Frozen values shared by several layers (inference, storage, cache, domain, API).

The bottom of the dependency graph: this module imports nothing of ours, so storage need not
import inference types and the cache need not import storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Metric = Literal["l2", "cosine"]


@dataclass(frozen=True)
class BBox:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def clipped(self, width: int, height: int) -> BBox:
        return BBox(
            min(max(self.x1, 0.0), float(width)),
            min(max(self.y1, 0.0), float(height)),
            min(max(self.x2, 0.0), float(width)),
            min(max(self.y2, 0.0), float(height)),
        )


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in pixel coordinates of the image it was given.

    ``landmarks`` is a (5, 2) float32 array in the order: left eye, right eye, nose tip, left mouth
    corner, right mouth corner (left/right as seen in the image), or None when the detector has
    none.
    """

    bbox: BBox
    score: float
    landmarks: NDArray[np.float32] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Collection:
    name: str
    description: str
    created_at: datetime
    person_count: int = 0


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    collection: str
    employee_id: str | None
    department: str | None
    position: str | None
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    face_count: int = 0


@dataclass(frozen=True)
class Face:
    id: str
    person_id: str
    collection: str
    space: str
    quality: float
    bbox: BBox | None
    image_sha256: str | None
    created_at: datetime
    # Only loaded when asked for (``with_embeddings=True``): listing faces does not need it.
    embedding: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Erasure:
    """What a delete removed, so the caller can purge caches (person keys and image results).

    ``person_ids``: persons erased. ``updated_person_ids``: persons that lost faces (their cached
    records are stale). ``image_sha256s``: images whose cached detection/embedding results
    produced the erased faces.
    """

    person_ids: tuple[str, ...] = ()
    face_ids: tuple[str, ...] = ()
    image_sha256s: tuple[str, ...] = ()
    updated_person_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.person_ids or self.face_ids)


# A mirror-sum embedder's vectors live in a space of their own: the model's space name and this.
MIRROR_SUFFIX = "+mirror"


# --- tenant-qualified keys ---------------------------------------------------------------------
# Collections and persons are stored under keys qualified by their tenant: ``<tenant>~<name>``,
# bare for the ``default`` tenant (which owns every gallery made before tenants existed). ``~`` is
# allowed in neither collection names nor person ids, so a key splits unambiguously.

DEFAULT_TENANT = "default"
KEY_SEPARATOR = "~"


def qualify(tenant: str, name: str) -> str:
    """The stored key of ``name`` (a collection name or a person id) in ``tenant``."""
    return name if tenant == DEFAULT_TENANT else f"{tenant}{KEY_SEPARATOR}{name}"


def split_key(key: str) -> tuple[str, str]:
    """(tenant, name) of a stored key."""
    tenant, sep, name = key.partition(KEY_SEPARATOR)
    return (tenant, name) if sep else (DEFAULT_TENANT, key)
