"""Nothing half-written, every stored value returned: the same contract on SQLite, PostgreSQL 15 and
PostgreSQL 16 + pgvector.

- add-face's person and face are one transaction: a failing face insert leaves no person;
- every backend accepts and refuses exactly the same names, fields and metadata, and returns what
  it accepted unchanged;
- SQLite writers of two processes never see "database is locked";
- an unreachable database is :class:`StorageUnavailableError`, and ``ping`` says so.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from facerec.config import DatabaseSettings, Settings
from facerec.errors import (
    ConflictError,
    InvalidInputError,
    InvalidValueError,
    StorageUnavailableError,
)
from facerec.storage import engine as engine_module
from facerec.storage.engine import create_engine
from facerec.storage.migrate import upgrade_database
from facerec.storage.models import NewFace, NewPerson, PersonPatch
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.storage.helpers import L2_SPACE, Backend, vec


def new_face(seed: int, face_id: str | None = None, space: str = L2_SPACE.name) -> NewFace:
    return NewFace(space=space, embedding=vec(seed), quality=0.5, id=face_id)


async def test_failed_face_insert_leaves_no_person(backend: Backend) -> None:
    repo = backend.repo
    await repo.add_faces("p-first", [new_face(1, "face-taken")], create=NewPerson("First"))
    before = await backend.scalar("SELECT COUNT(*) FROM change_log")
    # The face insert itself fails in the database (duplicate primary key)...
    with pytest.raises(ConflictError) as exc:
        await repo.add_faces("p-new", [new_face(2, "face-taken")], create=NewPerson("New"))
    assert exc.value.code == "duplicate_face_id"
    # ... or before it (an embedding space nobody registered): the person goes with it.
    with pytest.raises(InvalidInputError):
        await repo.add_faces("p-new", [new_face(3, space="nowhere@1")], create=NewPerson("New"))
    assert await backend.scalar("SELECT COUNT(*) FROM persons WHERE id = 'p-new'") == 0
    assert await backend.scalar("SELECT COUNT(*) FROM change_log") == before
    orphans = (
        "SELECT COUNT(*) FROM persons p"
        " WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)"
    )
    assert await backend.scalar(orphans) == 0


async def test_concurrent_creates_of_one_new_person(backend: Backend) -> None:
    repo = backend.repo
    results = await asyncio.gather(
        *(repo.add_faces("p-race", [new_face(10 + i)], create=NewPerson("Race")) for i in range(6))
    )
    assert all(len(r) == 1 for r in results)
    assert await backend.scalar("SELECT COUNT(*) FROM persons WHERE id = 'p-race'") == 1
    assert await backend.scalar("SELECT COUNT(*) FROM faces WHERE person_id = 'p-race'") == 6


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        node = {"n": node}
    return node


PERSON_INPUTS: list[tuple[str, dict[str, Any], bool]] = [
    ("name 200 chars", {"name": "n" * 200}, True),
    ("name 201 chars", {"name": "n" * 201}, False),
    ("name non-BMP", {"name": "Zoë 🧑‍💻 𝔊race"}, True),
    ("name NUL", {"name": "Grace\x00Hopper"}, False),
    ("name lone surrogate", {"name": "Grace\ud800"}, False),
    ("name blank", {"name": "   "}, False),
    ("employee_id 64", {"employee_id": "e" * 64}, True),
    ("employee_id 65", {"employee_id": "e" * 65}, False),
    ("employee_id NUL", {"employee_id": "E\x001"}, False),
    ("department 200", {"department": "d" * 200}, True),
    ("department 201", {"department": "d" * 201}, False),
    ("position NUL", {"position": "\x00"}, False),
    ("metadata depth 5", {"metadata": _deep(5)}, True),
    ("metadata depth 6", {"metadata": _deep(6)}, False),
    ("metadata 64 keys", {"metadata": {f"k{i}": i for i in range(64)}}, True),
    ("metadata 65 keys", {"metadata": {f"k{i}": i for i in range(65)}}, False),
    ("metadata 16 KiB", {"metadata": {"s": "x" * (16 * 1024 - 10)}}, True),
    ("metadata over 16 KiB", {"metadata": {"s": "x" * (16 * 1024)}}, False),
    ("metadata NUL value", {"metadata": {"s": "a\x00b"}}, False),
    ("metadata NUL key", {"metadata": {"a\x00": 1}}, False),
    ("metadata surrogate", {"metadata": {"s": "\udc80"}}, False),
    ("metadata NaN", {"metadata": {"x": float("nan")}}, False),
    ("metadata infinity", {"metadata": {"x": [float("inf")]}}, False),
    ("metadata float 1e16", {"metadata": {"x": 1e16}}, False),
    ("metadata bytes", {"metadata": {"x": b"raw"}}, False),
    ("metadata int key", {"metadata": {1: "x"}}, False),
    (
        "metadata unicode and numbers",
        {
            "metadata": {
                "ключ": "值 🧪",
                "big": 2**70,
                "f": 1.5e15,
                "g": -2.5e-300,
                "l": [None, True, "\u2028"],
            }
        },
        True,
    ),
]


async def test_every_backend_accepts_and_refuses_the_same_persons(backend: Backend) -> None:
    repo = backend.repo
    outcome: dict[str, bool] = {}
    for index, (label, fields, _) in enumerate(PERSON_INPUTS):
        values: dict[str, Any] = {"name": "Valid Name", **fields}
        try:
            person = NewPerson(id=f"v{index}", **values)
        except InvalidValueError as exc:
            assert exc.code in ("invalid_name", "invalid_metadata", "invalid_value"), label
            outcome[label] = False
            continue
        created = await repo.add_faces(person.id or "", [new_face(index)], create=person)
        stored = await repo.get_person(created[0].person_id)
        # What was accepted comes back exactly as sent.
        assert stored.name == person.name, label
        assert stored.employee_id == person.employee_id, label
        assert stored.department == person.department, label
        assert stored.position == person.position, label
        assert stored.metadata == dict(person.metadata), label
        outcome[label] = True
    assert outcome == {label: ok for label, _, ok in PERSON_INPUTS}


async def test_patches_and_descriptions_are_checked_before_the_database(backend: Backend) -> None:
    repo = backend.repo
    await repo.add_faces("p-patch", [new_face(1)], create=NewPerson("Patch"))
    for patch in (
        {"name": "x\x00"},
        {"name": "n" * 201},
        {"department": "d" * 201},
        {"metadata": {"a": float("nan")}},
    ):
        with pytest.raises(InvalidValueError):
            await repo.update_person("p-patch", PersonPatch(**patch))
    updated = await repo.update_person("p-patch", PersonPatch(name="n" * 200, position="p" * 200))
    assert updated.name == "n" * 200 and updated.position == "p" * 200
    await repo.create_collection("described", "d" * 1000)
    for description in ("d" * 1001, "nul\x00"):
        with pytest.raises(InvalidValueError):
            await repo.create_collection("refused", description)
    assert [c.name for c in await repo.list_collections()] == ["default", "described"]


async def test_sqlite_writers_of_two_processes_never_see_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the write lock longer than the busy timeout: writes wait for it
    (and queue within this process) instead of failing with "database is locked"."""
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    engines = [create_engine(DatabaseSettings(url=url)) for _ in range(2)]
    await upgrade_database(Settings(database_url=url), engine=engines[0])
    repos = [SqlGalleryRepository(e) for e in engines]
    try:
        await repos[0].ensure_space(L2_SPACE)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")

        async def release_later() -> None:
            await asyncio.sleep(0.6)  # six busy timeouts
            holder.execute("COMMIT")

        writes = [
            repos[i % 2].add_faces(f"w{i}", [new_face(i)], create=NewPerson(f"W{i}"))
            for i in range(16)
        ]
        await asyncio.gather(release_later(), *writes)
        holder.close()
        assert await repos[1].list_persons(limit=100) is not None
        page = await repos[1].list_persons(limit=100)
        assert sorted(p.id for p in page.items) == sorted(f"w{i}" for i in range(16))
        assert all(p.face_count == 1 for p in page.items)
    finally:
        for repo, engine in zip(repos, engines, strict=True):
            await repo.close()
            await engine.dispose()


async def test_unreachable_database_is_storage_unavailable() -> None:
    # Port 1 on the loopback: connection refused at once.
    engine = create_engine(DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/x"))
    repo = SqlGalleryRepository(engine)
    try:
        assert await repo.ping() is False
        with pytest.raises(StorageUnavailableError) as exc:
            await repo.get_person("someone")
        assert exc.value.code == "storage_unavailable"
        with pytest.raises(StorageUnavailableError):
            await repo.add_faces("p", [new_face(1)], create=NewPerson("P"))
        with pytest.raises(StorageUnavailableError):
            await upgrade_database(Settings(database_url=str(engine.url)), engine=engine)
    finally:
        await repo.close()
        await engine.dispose()
