"""The values of gallery migrations: a collection's active space, a migration's stored record,
a face still to re-embed, and the naming rules of the spaces a migration moves between.

Apart from :mod:`facerec.storage.gallery_migration` (the SQL store) so that the API routes and
the domain can use these values without reading through the store's queries and tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facerec.errors import NotFoundError
from facerec.storage.models import StoredChip
from facerec.values import MIRROR_SUFFIX, Face

# Statuses: running → complete → cut_over ⇄ rolled_back → finished; failed (given up).
OPEN_STATUSES = ("running", "complete", "cut_over", "rolled_back")


@dataclass(frozen=True)
class ActiveSpace:
    collection: str
    embedder: str
    space: str
    previous_embedder: str | None = None
    previous_space: str | None = None
    migration_id: str | None = None


@dataclass(frozen=True)
class MigrationRecord:
    id: str
    collection: str
    from_embedder: str
    from_space: str
    to_embedder: str
    to_space: str
    status: str
    total: int
    done: int
    without_chip: int
    batches: int
    batch_size: int
    error: str | None
    report: dict[str, Any] | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PendingFace:
    """A face still to re-embed: where it belongs and its kept chip (opened)."""

    face: Face
    origin_id: str
    chip: StoredChip


def source_spaces(space: str) -> list[str]:
    """The stored spaces of one embedder's vectors: its space and its mirror-averaged one."""
    return [space, space + MIRROR_SUFFIX]


def migration_not_found(migration_id: str) -> NotFoundError:
    return NotFoundError(
        f"migration {migration_id!r} not found",
        code="migration_not_found",
        migration_id=migration_id,
    )
