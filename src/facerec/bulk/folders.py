"""A folder of persons to enroll, and the state file that makes enrolling it resumable.

Layout: one sub-folder per person (its name is the person's name), photos inside, and optionally
``person.json`` with ``employee_id``, ``department``, ``position``, ``metadata`` (and ``name`` to
override the folder name). The state file ``.facerec-enroll.json`` in the folder maps each
photo (folder and SHA-256) to its enrolled face id, per collection, and each folder to its
person id.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = ".facerec-enroll.json"
PERSON_FILE = "person.json"
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif"}
)


@dataclass(frozen=True)
class Photo:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class PersonFolder:
    folder: str  # the sub-folder's name: the person's key in the state file
    name: str
    photos: list[Photo]
    employee_id: str | None = None
    department: str | None = None
    position: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class FolderError(ValueError):
    """The folder (or a person.json) cannot be used; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _person_json(folder: Path) -> dict[str, Any]:
    path = folder / PERSON_FILE
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{path}: not a JSON object ({exc})") from exc
    if not isinstance(value, dict):
        raise FolderError(f"{path}: not a JSON object")
    unknown = set(value) - {"name", "employee_id", "department", "position", "metadata"}
    if unknown:
        raise FolderError(f"{path}: unknown fields {sorted(unknown)}")
    if not isinstance(value.get("metadata", {}), dict):
        raise FolderError(f"{path}: metadata must be a JSON object")
    return value


def scan(root: Path) -> list[PersonFolder]:
    """Every person sub-folder of ``root`` with its photos (sorted; hidden files skipped). A file
    that is not named like an image is still sent: the service decides by content."""
    if not root.is_dir():
        raise FolderError(f"{root} is not a folder")
    persons = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = _person_json(folder)
        photos = [
            Photo(path, _sha256(path))
            for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".") and path.name != PERSON_FILE
        ]
        employee_id = info.get("employee_id")
        persons.append(
            PersonFolder(
                folder=folder.name,
                name=str(info.get("name") or folder.name),
                photos=photos,
                employee_id=str(employee_id) if employee_id not in (None, "") else None,
                department=info.get("department"),
                position=info.get("position"),
                metadata=dict(info.get("metadata") or {}),
            )
        )
    return persons


@dataclass
class EnrollState:
    """What earlier runs enrolled into one collection (the file holds every collection)."""

    path: Path
    collection: str
    data: dict[str, Any]

    @classmethod
    def load(cls, root: Path, collection: str) -> EnrollState:
        path = root / STATE_FILE
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                data = {}  # unreadable: start over (the service's own records still dedupe)
        data.setdefault("version", 1)
        data.setdefault("collections", {})
        data["collections"].setdefault(collection, {"persons": {}, "photos": {}})
        return cls(path, collection, data)

    @property
    def _mine(self) -> dict[str, Any]:
        mine: dict[str, Any] = self.data["collections"][self.collection]
        return mine

    def person_id(self, folder: str) -> str | None:
        value = self._mine["persons"].get(folder)
        return str(value) if value else None

    def set_person(self, folder: str, person_id: str) -> None:
        self._mine["persons"][folder] = person_id

    def forget_person(self, folder: str) -> None:
        self._mine["persons"].pop(folder, None)
        self._mine["photos"] = {
            sha: entry for sha, entry in self._mine["photos"].items() if entry["folder"] != folder
        }

    def face_of(self, sha256: str, folder: str) -> str | None:
        entry = self._mine["photos"].get(f"{folder}/{sha256}")
        return str(entry["face_id"]) if entry else None

    def enrolled(self, sha256: str, folder: str, face_id: str) -> None:
        self._mine["photos"][f"{folder}/{sha256}"] = {"folder": folder, "face_id": face_id}

    def save(self) -> None:
        """Written atomically (a crash mid-write never leaves a truncated state file)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
