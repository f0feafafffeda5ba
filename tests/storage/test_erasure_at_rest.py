"""Erasure that erases: no copy of an erased person readable from the database files, and
embeddings and metadata encrypted at rest when a key is set."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.config import DatabaseSettings, Settings
from facerec.storage.engine import create_engine
from facerec.storage.migrate import upgrade_database
from facerec.storage.models import NewFace, NewPerson, PersonPatch
from facerec.storage.pgvector import ensure_pgvector
from facerec.storage.sealing import MAGIC, SealedDataError, Sealer
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.storage.helpers import L2_SPACE, Backend, vec

NAME = "Zebulon Quarterfield-Xylograph"
CANARY = "erasure-canary-7f3a9c51"
# Eight float32 values whose bytes spell a pattern found nowhere else in a database file.
EMBEDDING_BYTES = b"ERASEME!" * 4
EMBEDDING = np.frombuffer(EMBEDDING_BYTES, dtype="<f4").astype(np.float32)
PATTERNS = {"name": NAME.encode(), "metadata": CANARY.encode(), "embedding": EMBEDDING_BYTES}
KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()


def canary_person(**fields: str) -> NewPerson:
    return NewPerson(name=NAME, metadata={"note": CANARY, "n": 7}, **fields)


def canary_face(face_id: str | None = None) -> NewFace:
    return NewFace(space=L2_SPACE.name, embedding=EMBEDDING, quality=0.9, id=face_id)


def sealer(key: str = KEY) -> Sealer:
    found = Sealer.from_settings(DatabaseSettings(encryption_key=key))
    assert found is not None
    return found


class SqliteGallery:
    def __init__(self, path: Path, engine: AsyncEngine, repo: SqlGalleryRepository) -> None:
        self.path = path
        self.engine = engine
        self.repo = repo

    def files(self) -> dict[str, Path]:
        return {s or "db": Path(f"{self.path}{s}") for s in ("", "-wal", "-shm")}

    def raw(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.files().values() if p.exists())


@pytest.fixture
async def sqlite_gallery(tmp_path: Path) -> AsyncIterator[SqliteGallery]:
    path = tmp_path / "data" / "gallery.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(DatabaseSettings(url=url))
    await upgrade_database(Settings(database_url=url), engine=engine)
    repo = SqlGalleryRepository(engine)
    await repo.ensure_space(L2_SPACE)
    try:
        yield SqliteGallery(path, engine, repo)
    finally:
        await repo.close()
        await engine.dispose()


def present(raw: bytes) -> set[str]:
    return {what for what, pattern in PATTERNS.items() if pattern in raw}


# ---- SQLite: secure_delete + checkpoint ----------------------------------------------------------


async def _erase_person(repo: SqlGalleryRepository, person_id: str, face_id: str) -> set[str]:
    await repo.delete_person(person_id)
    return set(PATTERNS)


async def _erase_face(repo: SqlGalleryRepository, person_id: str, face_id: str) -> set[str]:
    await repo.delete_face(face_id)
    return {"embedding"}  # the person (name, metadata) stays


async def _erase_collection(repo: SqlGalleryRepository, person_id: str, face_id: str) -> set[str]:
    await repo.delete_collection("staff", force=True)
    return set(PATTERNS)


async def _replace(repo: SqlGalleryRepository, person_id: str, face_id: str) -> set[str]:
    replacement = NewPerson(name="Someone Else", collection="staff", id=person_id)
    await repo.register_person(replacement, [NewFace(L2_SPACE.name, vec(3), 0.9)], replace=True)
    return set(PATTERNS)


Erase = Callable[[SqlGalleryRepository, str, str], Awaitable[set[str]]]


@pytest.mark.parametrize(
    "erase",
    [_erase_person, _erase_face, _erase_collection, _replace],
    ids=["delete_person", "delete_face", "delete_collection", "register_replace"],
)
async def test_sqlite_erasure_leaves_no_bytes_in_db_wal_or_shm(
    sqlite_gallery: SqliteGallery, erase: Erase
) -> None:
    repo = sqlite_gallery.repo
    await repo.create_collection("staff")
    registered = await repo.register_person(
        canary_person(collection="staff"), [canary_face(), canary_face()]
    )
    await repo.add_faces(registered.person.id, [NewFace(L2_SPACE.name, vec(1), 0.8)])
    assert present(sqlite_gallery.raw()) == set(PATTERNS)  # the test can see them

    gone = await erase(repo, registered.person.id, registered.faces[0].id)
    if gone == {"embedding"}:  # one face of two with this embedding: erase the other too
        await repo.delete_face(registered.faces[1].id)

    assert present(sqlite_gallery.raw()) & gone == set()
    wal = sqlite_gallery.files()["-wal"]
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated


async def test_a_reader_delays_the_checkpoint_and_the_next_erasure_completes_it(
    sqlite_gallery: SqliteGallery, caplog: pytest.LogCaptureFixture
) -> None:
    repo = sqlite_gallery.repo
    first = await repo.register_person(canary_person(), [canary_face()])
    other = await repo.register_person(NewPerson(name="Other"), [])
    reader = sqlite3.connect(sqlite_gallery.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM persons").fetchone()  # pins a WAL snapshot
        await repo.delete_person(first.person.id)  # committed, even if not checkpointed
        assert "blocked by readers" in caplog.text
    finally:
        reader.close()
    await repo.delete_person(other.person.id)
    assert present(sqlite_gallery.raw()) == set()


async def test_sqlite_files_are_owner_only(sqlite_gallery: SqliteGallery) -> None:
    await sqlite_gallery.repo.register_person(canary_person(), [canary_face()])
    files = sqlite_gallery.files()
    assert files["-wal"].exists() and files["-shm"].exists()
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(sqlite_gallery.path.parent.stat().st_mode) == 0o700


async def test_secure_delete_is_on_for_every_connection(sqlite_gallery: SqliteGallery) -> None:
    async with sqlite_gallery.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA secure_delete")).scalar() == 1


async def test_existing_files_are_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---- encryption at rest ------------------------------------------------------------------------


async def test_sqlite_with_a_key_stores_no_plaintext_metadata_or_embedding(
    sqlite_gallery: SqliteGallery,
) -> None:
    repo = SqlGalleryRepository(sqlite_gallery.engine, sealer=sealer())
    try:
        registered = await repo.register_person(canary_person(), [canary_face()])
        await repo.update_person(
            registered.person.id, PersonPatch(metadata={"note": CANARY, "n": 8})
        )
        raw = sqlite_gallery.raw()
        assert PATTERNS["metadata"] not in raw
        assert PATTERNS["embedding"] not in raw
        assert PATTERNS["name"] in raw  # names are searched, so stay plaintext

        person = await repo.get_person(registered.person.id)
        assert person.metadata == {"note": CANARY, "n": 8}
        faces = await repo.list_faces(person.id, with_embeddings=True)
        assert faces[0].embedding is not None
        assert faces[0].embedding.tobytes() == EMBEDDING_BYTES
    finally:
        await repo.close()


async def test_sealed_values_round_trip_on_every_backend(backend: Backend) -> None:
    repo = SqlGalleryRepository(backend.engine, sealer=sealer())
    try:
        registered = await repo.register_person(canary_person(), [canary_face()])
        person_id, face_id = registered.person.id, registered.faces[0].id
        assert registered.person.metadata == {"note": CANARY, "n": 7}

        async with backend.engine.connect() as conn:
            stored_embedding = (
                await conn.execute(
                    text("SELECT embedding FROM faces WHERE id = :f"), {"f": face_id}
                )
            ).scalar_one()
            stored_metadata = (
                await conn.execute(
                    text("SELECT CAST(metadata AS TEXT) FROM persons WHERE id = :p"),
                    {"p": person_id},
                )
            ).scalar_one()
        assert bytes(stored_embedding).startswith(MAGIC)
        assert EMBEDDING_BYTES not in bytes(stored_embedding)
        assert CANARY not in stored_metadata and NAME not in stored_metadata

        assert (await repo.get_person(person_id)).metadata == {"note": CANARY, "n": 7}
        assert (await repo.get_persons([person_id]))[person_id].metadata["note"] == CANARY
        page = await repo.list_persons()
        assert [p.metadata["note"] for p in page.items] == [CANARY]
        updated = await repo.update_person(person_id, PersonPatch(metadata={"note": "new"}))
        assert updated.metadata == {"note": "new"}

        face = await repo.get_face(face_id, with_embeddings=True)
        assert face.embedding is not None and face.embedding.tobytes() == EMBEDDING_BYTES
        (of,) = await repo.faces_of([person_id], L2_SPACE.name)
        assert of.embedding is not None and of.embedding.tobytes() == EMBEDDING_BYTES
        rows = await repo.index_rows("default", L2_SPACE.name)
        assert rows.face_ids == [face_id] and rows.vectors[0].tobytes() == EMBEDDING_BYTES
        (vector,) = await repo.face_vectors([face_id])
        assert vector.vector.tobytes() == EMBEDDING_BYTES

        again = await repo.register_person(
            canary_person(id=person_id), [canary_face()], replace=True
        )
        assert again.person.metadata["note"] == CANARY and again.removed.face_ids == (face_id,)
    finally:
        await repo.close()


async def test_a_wrong_key_or_no_key_is_a_clear_error(backend: Backend) -> None:
    repo = SqlGalleryRepository(backend.engine, sealer=sealer())
    wrong = SqlGalleryRepository(backend.engine, sealer=sealer(OTHER_KEY))
    try:
        registered = await repo.register_person(canary_person(), [canary_face()])
        person_id, face_id = registered.person.id, registered.faces[0].id
        with pytest.raises(SealedDataError, match="another key") as exc:
            await wrong.get_person(person_id)
        assert exc.value.code == "sealed_data_unreadable"
        with pytest.raises(SealedDataError, match="another key"):
            await wrong.get_face(face_id, with_embeddings=True)
        with pytest.raises(SealedDataError, match="another key"):
            await wrong.index_rows("default", L2_SPACE.name)
        with pytest.raises(SealedDataError, match="ENCRYPTION_KEY is not set"):
            await backend.repo.get_person(person_id)  # the fixture's repository has no key
        with pytest.raises(SealedDataError, match="ENCRYPTION_KEY is not set"):
            await backend.repo.face_vectors([face_id])
        # Without embeddings nothing sealed is read: still answers.
        assert (await backend.repo.get_face(face_id)).id == face_id
    finally:
        await repo.close()
        await wrong.close()


async def test_a_sealed_value_moved_to_another_row_does_not_open(backend: Backend) -> None:
    repo = SqlGalleryRepository(backend.engine, sealer=sealer())
    try:
        registered = await repo.register_person(
            canary_person(), [canary_face(), NewFace(L2_SPACE.name, vec(2), 0.9)]
        )
        first, second = (f.id for f in registered.faces)
        async with backend.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE faces SET embedding = (SELECT embedding FROM faces WHERE id = :a)"
                    " WHERE id = :b"
                ),
                {"a": first, "b": second},
            )
        with pytest.raises(SealedDataError, match="altered or copied"):
            await repo.get_face(second, with_embeddings=True)
    finally:
        await repo.close()


async def test_rows_written_without_a_key_stay_readable_after_one_is_set(
    backend: Backend,
) -> None:
    plain = await backend.repo.register_person(canary_person(), [canary_face()])
    repo = SqlGalleryRepository(backend.engine, sealer=sealer())
    try:
        person = await repo.get_person(plain.person.id)
        assert person.metadata == {"note": CANARY, "n": 7}
        face = await repo.get_face(plain.faces[0].id, with_embeddings=True)
        assert face.embedding is not None and face.embedding.tobytes() == EMBEDDING_BYTES
        rows = await repo.index_rows("default", L2_SPACE.name)
        assert rows.vectors[0].tobytes() == EMBEDDING_BYTES
        # New writes are sealed; old and new read together.
        (added,) = await repo.add_faces(person.id, [NewFace(L2_SPACE.name, vec(5), 0.9)])
        vectors = {v.face_id: v.vector for v in await repo.face_vectors([face.id, added.id])}
        assert vectors[face.id].tobytes() == EMBEDDING_BYTES
        np.testing.assert_array_equal(vectors[added.id], vec(5))
    finally:
        await repo.close()


@pytest.mark.parametrize(
    "backend", [pytest.param("pgvector", marks=pytest.mark.pgvector)], indirect=True
)
async def test_pgvector_backfill_opens_sealed_embeddings_or_stays_off(backend: Backend) -> None:
    repo = SqlGalleryRepository(backend.engine, sealer=sealer())
    try:
        registered = await repo.register_person(canary_person(), [canary_face()])
        async with backend.engine.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE face_vectors")
            assert not await conn.run_sync(ensure_pgvector)  # cannot read them: not created
            assert await conn.run_sync(ensure_pgvector, sealer())
            found = (await conn.exec_driver_sql("SELECT embedding::text FROM face_vectors")).all()
        assert len(found) == 1
        values = np.array([float(x) for x in found[0][0].strip("[]").split(",")], np.float32)
        np.testing.assert_array_equal(values, EMBEDDING)
        assert registered.faces[0].id
    finally:
        await repo.close()


# ---- the sealer ----------------------------------------------------------------------------------


def test_sealer_binds_values_to_row_and_column() -> None:
    s = sealer()
    blob = s.seal(b"payload", column="faces.embedding", row_id="a")
    assert blob.startswith(MAGIC) and b"payload" not in blob
    assert s.open(blob, column="faces.embedding", row_id="a") == b"payload"
    with pytest.raises(SealedDataError, match="altered or copied"):
        s.open(blob, column="faces.embedding", row_id="b")
    with pytest.raises(SealedDataError, match="altered or copied"):
        s.open(blob, column="persons.metadata", row_id="a")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealedDataError):
        s.open(tampered, column="faces.embedding", row_id="a")
    stored = s.seal_json({"k": [1, "é"]}, column="persons.metadata", row_id="a")
    assert s.open_json(stored, column="persons.metadata", row_id="a") == {"k": [1, "é"]}


def test_the_format_marker_is_never_a_plaintext_embedding() -> None:
    assert np.isnan(np.frombuffer(MAGIC, dtype="<f4")[0])


@pytest.mark.parametrize("bad", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_key_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="FACEREC_DB__ENCRYPTION_KEY"):
        sealer(bad)


def test_the_key_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Sealer.from_settings(DatabaseSettings()) is None
    monkeypatch.setenv("FACEREC_DB__ENCRYPTION_KEY", KEY)
    settings = Settings()
    found = Sealer.from_settings(settings.db)
    assert found is not None and found.key_id == sealer().key_id
    assert KEY not in repr(settings.db)
