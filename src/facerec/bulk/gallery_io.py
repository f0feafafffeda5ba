"""A portable gallery: one collection's persons, metadata, embeddings (with their embedding
space, dimension and metric) and kept chips, as a JSON-lines file another instance can import.

Line 1 is the header ``{"format": "facerec-gallery", "version": 1, "collection",
"active_space": {"embedder", "space"} | null, "spaces": {name: {"dim", "metric"}}, "persons",
"faces"}``; every further line is one person ``{"person": {...}, "faces": [{"face_id", "space",
"quality", "bbox", "image_sha256", "embedding" (base64 float32, little-endian), "chip":
{"format", "landmarks", "data" (base64)} | null}]}``.

Import keeps person and face ids (a person already there is skipped, so importing twice is
harmless) and refuses a file whose spaces do not include the target collection's active space:
vectors of different models are never comparable. Re-embedding from the chips on import
(``--migrate``) is not supported; import into a new collection and run ``facerec gallery
migrate`` there instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
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
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson, StoredChip
from facerec.storage.schema import face_chips
from facerec.storage.sealing import CHIP_COLUMN, Sealer, open_blob
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.sql_support import read_connection
from facerec.values import BBox, Face, Person

FORMAT = "facerec-gallery"
VERSION = 1
PAGE = 200


class GalleryFileError(ValueError):
    """The file cannot be imported here; the message says why and what to do."""


@dataclass
class _Storage:
    repository: SqlGalleryRepository
    spaces: SqlMigrationStore
    sealer: Sealer | None


@asynccontextmanager
async def _storage(settings: Settings) -> AsyncIterator[_Storage]:
    from facerec.storage.engine import create_engine
    from facerec.storage.migrate import upgrade_database

    engine = create_engine(settings.db)
    try:
        await upgrade_database(settings, engine=engine)
        sealer = Sealer.from_settings(settings.db)
        repository = SqlGalleryRepository(engine, sealer=sealer)
        try:
            yield _Storage(repository, SqlMigrationStore(engine, sealer), sealer)
        finally:
            await repository.close()
    finally:
        await engine.dispose()


def _progress(quiet: bool) -> Progress:
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


async def _chips(storage: _Storage, face_ids: list[str]) -> dict[str, dict[str, Any]]:
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
    async with _storage(settings) as storage:
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
        with _progress(quiet) as progress:
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


def _read(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    handle = path.open(encoding="utf-8")
    try:
        header = json.loads(handle.readline() or "null")
    except json.JSONDecodeError as exc:
        handle.close()
        raise GalleryFileError(f"{path}: not a facerec gallery file") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        handle.close()
        raise GalleryFileError(f"{path}: not a facerec gallery file")
    if header.get("version") != VERSION:
        handle.close()
        raise GalleryFileError(f"{path}: version {header.get('version')}; this reads {VERSION}")

    def lines() -> Iterator[dict[str, Any]]:
        with handle:
            for raw in handle:
                if raw.strip():
                    yield json.loads(raw)

    return header, lines()


def _space_to_import(header: dict[str, Any], target_active: str | None, migrate: bool) -> str:
    """The one space whose vectors are imported: the target collection's active one, else the
    file's active one."""
    spaces: dict[str, Any] = header.get("spaces") or {}
    file_active = (header.get("active_space") or {}).get("space")
    if target_active is None:
        chosen = file_active or (sorted(spaces)[0] if spaces else None)
        if chosen is None:
            raise GalleryFileError("the file holds no faces")
        return str(chosen)
    if target_active in spaces:
        return target_active
    advice = (
        "import it into a new (empty) collection with --collection, then re-embed there with "
        "`facerec gallery migrate --collection NEW --to MODEL` (it uses the kept chips)"
    )
    if migrate:
        raise GalleryFileError(
            f"--migrate is not supported by import: the file's faces are in {sorted(spaces)}, "
            f"the target collection answers from {target_active!r}; {advice}"
        )
    raise GalleryFileError(
        f"the file's faces are in {sorted(spaces)} but the target collection answers from "
        f"{target_active!r}: vectors of another model cannot be searched; {advice}"
    )


def _new_face(raw: dict[str, Any], dim: int) -> NewFace:
    vector = np.frombuffer(base64.b64decode(raw["embedding"]), dtype="<f4").astype(np.float32)
    if vector.shape != (dim,):
        raise GalleryFileError(f"face {raw.get('face_id')}: {vector.shape[0]} values, not {dim}")
    chip = raw.get("chip")
    box = raw.get("bbox")
    return NewFace(
        space=raw["space"],
        embedding=vector,
        quality=float(raw.get("quality") or 0.0),
        bbox=None if box is None else BBox(*(float(v) for v in box)),
        image_sha256=raw.get("image_sha256"),
        id=raw.get("face_id"),
        chip=None
        if not chip
        else StoredChip(
            base64.b64decode(chip["data"]),
            chip["format"],
            tuple((float(x), float(y)) for x, y in chip["landmarks"]),
        ),
    )


async def import_gallery(
    settings: Settings,
    path: Path,
    *,
    collection: str | None = None,
    migrate: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    header, lines = _read(path)
    target = collection or str(header["collection"])
    async with _storage(settings) as storage:
        repository = storage.repository
        await repository.ensure_collection(target)
        active = await storage.spaces.active(target)
        if active is None and await repository.space_counts(target):
            counts = await repository.space_counts(target)
            active_space: str | None = max(counts, key=lambda s: counts[s])
        else:
            active_space = None if active is None else active.space
        space = _space_to_import(header, active_space, migrate)
        info = header["spaces"][space]
        await repository.ensure_space(EmbeddingSpace(space, int(info["dim"]), info["metric"]))
        persons = faces = skipped = 0
        with _progress(quiet) as progress:
            task = progress.add_task("importing", total=int(header.get("persons") or 0))
            for line in lines:
                progress.advance(task)
                raw_person = line["person"]
                try:
                    await repository.get_person(raw_person["person_id"])
                    skipped += 1
                    continue
                except NotFoundError:
                    pass
                new_faces = [_new_face(f, int(info["dim"])) for f in line["faces"]]
                new_faces = [f for f in new_faces if f.space == space]
                if not new_faces:
                    continue
                person = NewPerson(
                    name=raw_person["name"],
                    collection=target,
                    id=raw_person["person_id"],
                    employee_id=raw_person.get("employee_id"),
                    department=raw_person.get("department"),
                    position=raw_person.get("position"),
                    metadata=raw_person.get("metadata") or {},
                )
                await repository.add_faces(person.id or "", new_faces, create=person)
                persons += 1
                faces += len(new_faces)
        if active is None:
            embedder = (header.get("active_space") or {}).get("embedder") or space.split("@")[0]
            await storage.spaces.adopt(target, str(embedder), space)
    return {
        "file": str(path),
        "collection": target,
        "space": space,
        "persons": persons,
        "faces": faces,
        "skipped": skipped,
    }
