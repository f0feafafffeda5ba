"""Reading a portable gallery file (:mod:`.gallery_io`) into a collection.

Import keeps person and face ids (a person already there is skipped, so importing twice is
harmless) and refuses a file whose spaces do not include the target collection's active space:
vectors of different models are never comparable. Re-embedding from the chips on import
(``--migrate``) is not supported; import into a new collection and run ``facerec gallery
migrate`` there instead.

Apart from :mod:`.gallery_io` (the format and export) because reading checks what writing
never has to: the header, the spaces against the target's, each vector's dimension.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facerec.bulk.gallery_io import FORMAT, VERSION, open_storage, progress_on_stderr
from facerec.config import Settings
from facerec.errors import NotFoundError
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson, StoredChip
from facerec.values import BBox


class GalleryFileError(ValueError):
    """The file cannot be imported here; the message says why and what to do."""


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
    async with open_storage(settings) as storage:
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
        with progress_on_stderr(quiet) as progress:
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
