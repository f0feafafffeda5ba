"""A portable gallery: one collection's persons, metadata, embeddings (with their embedding
space, dimension and metric) and kept chips, as a JSON-lines file another instance can import.

Line 1 is the header ``{"format": "facerec-gallery", "version": 1, "collection",
"active_space": {"embedder", "space"} | null, "spaces": {name: {"dim", "metric"}}, "persons",
"faces"}``; every further line is one person ``{"person": {...}, "faces": [{"face_id", "space",
"quality", "bbox", "image_sha256", "embedding" (base64 float32, little-endian), "chip":
{"format", "landmarks", "data" (base64)} | null}]}``.

This module writes the file (export) and holds what export and import share: the format's name
and version, the storage they open; reading it back is :mod:`.gallery_import`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import select

from facerec.config import Settings
from facerec.errors import NotFoundError
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.schema import face_chips
from facerec.storage.sealing import CHIP_COLUMN, Sealer, open_blob
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.sql_support import read_connection
from facerec.values import Face, Person

FORMAT = "facerec-gallery"
VERSION = 1
PAGE = 200


@dataclass
class GalleryStorage:
    """What export and import work on, opened by :func:`open_storage`."""

    repository: SqlGalleryRepository
    spaces: SqlMigrationStore
    sealer: Sealer | None


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[GalleryStorage]:
    """The configured database with its schema upgraded, closed again on the way out."""
    from facerec.storage.engine import create_engine
    from facerec.storage.migrate import upgrade_database

    engine = create_engine(settings.db)
    try:
        await upgrade_database(settings, engine=engine)
        sealer = Sealer.from_settings(settings.db)
        repository = SqlGalleryRepository(engine, sealer=sealer)
        try:
            yield GalleryStorage(repository, SqlMigrationStore(engine, sealer), sealer)
        finally:
            await repository.close()
    finally:
        await engine.dispose()


def progress_on_stderr(quiet: bool) -> Progress:
    return Progress(console=Console(stderr=True), disable=quiet)


async def _persons(repository: SqlGalleryRepository, collection: str) -> list[Person]:
    persons: list[Person] = []
    cursor: str | None = None
    while True:
        page = await repository.list_persons(collection=collection, limit=PAGE, cursor=cursor)
        persons.extend(page.items)
        if page.next_cursor is None:
            return persons
        cursor = page.next_cursor


async def _chips(storage: GalleryStorage, face_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not face_ids:
        return {}
    query = select(face_chips).where(face_chips.c.face_id.in_(face_ids))
    async with read_connection(storage.repository.engine) as conn:
        rows = (await conn.execute(query)).all()
    chips = {}
    for row in rows:
        m = row._mapping
        data = open_blob(storage.sealer, m["chip"], column=CHIP_COLUMN, row_id=m["face_id"])
        chips[m["face_id"]] = {
            "format": m["format"],
            "landmarks": [list(p) for p in m["landmarks"]],
            "data": base64.b64encode(data).decode("ascii"),
        }
    return chips


def _face_line(face: Face, chip: dict[str, Any] | None) -> dict[str, Any]:
    assert face.embedding is not None
    vector = np.ascontiguousarray(face.embedding, dtype="<f4")
    box = face.bbox
    return {
        "face_id": face.id,
        "space": face.space,
        "quality": face.quality,
        "bbox": None if box is None else [box.x1, box.y1, box.x2, box.y2],
        "image_sha256": face.image_sha256,
        "embedding": base64.b64encode(vector.tobytes()).decode("ascii"),
        "chip": chip,
    }


def _person_line(person: Person) -> dict[str, Any]:
    return {
        "person_id": person.id,
        "name": person.name,
        "employee_id": person.employee_id,
        "department": person.department,
        "position": person.position,
        "metadata": dict(person.metadata),
    }


async def export_gallery(
    settings: Settings, collection: str, path: Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Write ``collection`` (of the default tenant) to ``path``; counts of what was written."""
    async with open_storage(settings) as storage:
        repository = storage.repository
        try:
            await repository.get_collection(collection)
        except NotFoundError as exc:
            raise ValueError(f"collection {collection!r} not found") from exc
        active = await storage.spaces.active(collection)
        persons = await _persons(repository, collection)
        lines: list[dict[str, Any]] = []
        spaces: dict[str, dict[str, Any]] = {}
        faces_total = chips_total = 0
        with progress_on_stderr(quiet) as progress:
            task = progress.add_task("exporting", total=len(persons))
            for person in persons:
                faces = await repository.list_faces(person.id, with_embeddings=True)
                chips = await _chips(storage, [f.id for f in faces])
                for space in {f.space for f in faces} - set(spaces):
                    found = await repository.get_space(space)
                    spaces[space] = {"dim": found.dim, "metric": found.metric}
                lines.append(
                    {
                        "person": _person_line(person),
                        "faces": [_face_line(f, chips.get(f.id)) for f in faces],
                    }
                )
                faces_total += len(faces)
                chips_total += len(chips)
                progress.advance(task)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "collection": collection,
        "active_space": None
        if active is None
        else {"embedder": active.embedder, "space": active.space},
        "spaces": spaces,
        "persons": len(lines),
        "faces": faces_total,
        "exported_at": datetime.now(UTC).isoformat(),
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for line in (header, *lines):
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return {
        "file": str(path),
        "collection": collection,
        "persons": len(lines),
        "faces": faces_total,
        "chips": chips_total,
        "spaces": sorted(spaces),
    }
