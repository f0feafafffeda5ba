"""Repository contract: the same tests on SQLite, PostgreSQL 15 and PostgreSQL 16 + pgvector."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from facerec.errors import ConflictError, InvalidInputError, NotFoundError
from facerec.storage.models import (
    EmbeddingSpace,
    NewFace,
    NewPerson,
    PersonPatch,
)
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.values import BBox
from tests.storage.helpers import COS_SPACE, L2_SPACE, Backend, vec


def face(seed: int, space: EmbeddingSpace = L2_SPACE, sha: str | None = None) -> NewFace:
    return NewFace(
        space=space.name,
        embedding=vec(seed, space.dim),
        quality=0.9,
        bbox=BBox(1.0, 2.0, 30.5, 40.25),
        image_sha256=sha or f"{seed:064x}",
    )


async def test_default_collection_and_collection_crud(backend: Backend) -> None:
    repo = backend.repo
    assert [c.name for c in await repo.list_collections()] == ["default"]
    created = await repo.create_collection("staff", "employees")
    assert created.name == "staff" and created.person_count == 0
    with pytest.raises(ConflictError) as exc:
        await repo.create_collection("staff")
    assert exc.value.code == "collection_exists"
    with pytest.raises(InvalidInputError):
        await repo.create_collection("bad name!")
    await repo.create_person(NewPerson(name="A", collection="staff"))
    assert (await repo.get_collection("staff")).person_count == 1
    with pytest.raises(ConflictError) as exc:
        await repo.delete_collection("staff")
    assert exc.value.code == "collection_not_empty"
    with pytest.raises(ConflictError):
        await repo.delete_collection("default", force=True)
    erasure = await repo.delete_collection("staff", force=True)
    assert len(erasure.person_ids) == 1
    with pytest.raises(NotFoundError) as missing:
        await repo.get_collection("staff")
    assert missing.value.code == "collection_not_found"
    assert await backend.scalar("SELECT count(*) FROM persons") == 0


async def test_person_crud_and_patch(backend: Backend) -> None:
    repo = backend.repo
    person = await repo.create_person(
        NewPerson(
            name="Ada Lovelace",
            employee_id="E1",
            department="R&D",
            position="Engineer",
            metadata={"badge": 7, "tags": ["a"]},
        )
    )
    assert person.collection == "default" and person.face_count == 0
    assert person.created_at.tzinfo is not None
    fetched = await repo.get_person(person.id)
    assert fetched == person
    assert (await repo.get_person_by_employee_id("E1")).id == person.id
    patched = await repo.update_person(
        person.id, PersonPatch(name="Ada King", department=None, metadata={"badge": 8})
    )
    assert patched.name == "Ada King" and patched.department is None
    assert patched.position == "Engineer" and patched.metadata == {"badge": 8}
    assert patched.updated_at >= person.updated_at
    with pytest.raises(NotFoundError) as exc:
        await repo.get_person("missing")
    assert exc.value.code == "person_not_found"
    with pytest.raises(NotFoundError):
        await repo.update_person("missing", PersonPatch(name="x"))
    with pytest.raises(NotFoundError) as exc:
        await repo.create_person(NewPerson(name="x", collection="nope"))
    assert exc.value.code == "collection_not_found"
    chosen = await repo.create_person(NewPerson(name="Chosen", id="client-id-1"))
    assert chosen.id == "client-id-1"
    with pytest.raises(ConflictError) as conflict:
        await repo.create_person(NewPerson(name="Again", id="client-id-1"))
    assert conflict.value.code == "person_exists"


async def test_duplicate_employee_id(backend: Backend) -> None:
    repo = backend.repo
    first = await repo.create_person(NewPerson(name="A", employee_id="E42"))
    for call in (
        repo.create_person(NewPerson(name="B", employee_id="E42")),
        repo.register_person(NewPerson(name="B", employee_id="E42"), [face(1)]),
    ):
        with pytest.raises(ConflictError) as exc:
            await call
        assert exc.value.code == "duplicate_employee_id"
    other = await repo.create_person(NewPerson(name="C"))
    with pytest.raises(ConflictError) as exc:
        await repo.update_person(other.id, PersonPatch(employee_id="E42"))
    assert exc.value.code == "duplicate_employee_id"
    assert await backend.scalar("SELECT count(*) FROM persons") == 2
    assert (await repo.get_person_by_employee_id("E42")).id == first.id


async def test_faces_add_list_delete(backend: Backend) -> None:
    repo = backend.repo
    person = await repo.create_person(NewPerson(name="A"))
    added = await repo.add_faces(person.id, [face(1), face(2, COS_SPACE)])
    assert [f.space for f in added] == [L2_SPACE.name, COS_SPACE.name]
    assert added[0].bbox == BBox(1.0, 2.0, 30.5, 40.25)
    listed = await repo.list_faces(person.id, with_embeddings=True)
    assert {f.id for f in listed} == {f.id for f in added}
    stored = next(f for f in listed if f.id == added[0].id)
    assert stored.embedding is not None
    np.testing.assert_array_equal(stored.embedding, vec(1))
    assert (await repo.get_person(person.id)).face_count == 2
    with pytest.raises(InvalidInputError) as exc:
        await repo.add_faces(person.id, [NewFace(space=L2_SPACE.name, embedding=vec(3, 5))])
    assert exc.value.code == "embedding_dim_mismatch"
    with pytest.raises(InvalidInputError) as exc:
        await repo.add_faces(person.id, [NewFace(space="nope@1", embedding=vec(3))])
    assert exc.value.code == "unknown_embedding_space"
    with pytest.raises(NotFoundError):
        await repo.add_faces("missing", [face(4)])
    erasure = await repo.delete_face(added[0].id)
    assert erasure.face_ids == (added[0].id,)
    assert erasure.image_sha256s == (f"{1:064x}",)
    assert erasure.updated_person_ids == (person.id,)
    with pytest.raises(NotFoundError) as missing:
        await repo.get_face(added[0].id)
    assert missing.value.code == "face_not_found"
    with pytest.raises(NotFoundError):
        await repo.delete_face(added[0].id)


async def test_space_registration_conflict(backend: Backend) -> None:
    assert await backend.repo.ensure_space(L2_SPACE) == L2_SPACE
    with pytest.raises(ConflictError) as exc:
        await backend.repo.ensure_space(EmbeddingSpace(L2_SPACE.name, 16, "l2"))
    assert exc.value.code == "embedding_space_mismatch"


async def test_pagination_and_filters(backend: Backend) -> None:
    repo = backend.repo
    await repo.create_collection("other")
    names = [f"Person {i:02d}" for i in range(23)]
    for i, name in enumerate(names):
        collection = "other" if i % 5 == 0 else "default"
        await repo.create_person(NewPerson(name=name, employee_id=f"E{i}", collection=collection))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await repo.list_persons(limit=10, cursor=cursor)
        seen.extend(p.name for p in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == names and pages == 3
    other = await repo.list_persons(collection="other", limit=100)
    assert [p.name for p in other.items] == [names[i] for i in range(0, 23, 5)]
    assert other.next_cursor is None
    found = await repo.list_persons(name="PERSON 1")
    assert [p.name for p in found.items] == [f"Person {i}" for i in range(10, 20)]
    assert (await repo.list_persons(name="50%")).items == []  # LIKE wildcards are literal
    assert [p.name for p in (await repo.list_persons(employee_id="E7")).items] == ["Person 07"]
    with pytest.raises(InvalidInputError):
        await repo.list_persons(cursor="not-a-cursor")
    with pytest.raises(NotFoundError):
        await repo.list_persons(collection="nope")


async def test_delete_person_is_erasure(backend: Backend) -> None:
    repo = backend.repo
    person = await repo.create_person(NewPerson(name="Gone", employee_id="G1"))
    keep = await repo.create_person(NewPerson(name="Kept"))
    await repo.add_faces(
        person.id, [face(1, sha="a" * 64), face(2, sha="b" * 64), face(3, COS_SPACE)]
    )
    await repo.add_faces(keep.id, [face(9)])
    erasure = await repo.delete_person(person.id)
    assert erasure.person_ids == (person.id,)
    assert len(erasure.face_ids) == 3
    assert {"a" * 64, "b" * 64} <= set(erasure.image_sha256s)
    pid = {"p": person.id}
    assert await backend.scalar("SELECT count(*) FROM persons WHERE id = :p", **pid) == 0
    assert await backend.scalar("SELECT count(*) FROM faces WHERE person_id = :p", **pid) == 0
    if backend.kind == "pgvector":
        sql = "SELECT count(*) FROM face_vectors WHERE person_id = :p"
        assert await backend.scalar(sql, **pid) == 0
        assert await backend.scalar("SELECT count(*) FROM face_vectors") == 1
    assert await backend.scalar("SELECT count(*) FROM faces") == 1
    with pytest.raises(NotFoundError):
        await repo.get_person_by_employee_id("G1")
    with pytest.raises(NotFoundError):
        await repo.delete_person(person.id)
    # The employee id is free again.
    await repo.create_person(NewPerson(name="New", employee_id="G1"))


async def test_register_is_atomic(backend: Backend) -> None:
    repo = backend.repo
    bad = [face(1), NewFace(space=L2_SPACE.name, embedding=np.array([np.nan] * 8, np.float32))]
    with pytest.raises(InvalidInputError):
        await repo.register_person(NewPerson(name="A", id="atomic-1", employee_id="X1"), bad)
    duplicate_ids = [
        NewFace(space=L2_SPACE.name, embedding=vec(1), id="face-dup"),
        NewFace(space=L2_SPACE.name, embedding=vec(2), id="face-dup"),
    ]
    with pytest.raises(ConflictError):  # fails at the database, after the person row
        await repo.register_person(NewPerson(name="A", id="atomic-1"), duplicate_ids)
    assert await backend.scalar("SELECT count(*) FROM persons") == 0
    assert await backend.scalar("SELECT count(*) FROM faces") == 0
    assert await backend.scalar("SELECT count(*) FROM change_log") == 0

    done = await repo.register_person(
        NewPerson(name="A", id="atomic-1", employee_id="X1"), [face(1), face(2)]
    )
    assert done.created and done.person.face_count == 2
    # A failed replace keeps the old faces.
    with pytest.raises(ConflictError):
        await repo.register_person(
            NewPerson(name="A2", employee_id="X1"), duplicate_ids, replace=True
        )
    assert (await repo.get_person("atomic-1")).face_count == 2
    assert (await repo.get_person("atomic-1")).name == "A"


async def test_register_replace(backend: Backend) -> None:
    repo = backend.repo
    first = await repo.register_person(
        NewPerson(name="A", employee_id="R1", department="old"), [face(1), face(2)]
    )
    old_ids = {f.id for f in first.faces}
    with pytest.raises(ConflictError) as exc:
        await repo.register_person(NewPerson(name="A", employee_id="R1"), [face(3)])
    assert exc.value.code == "duplicate_employee_id"
    again = await repo.register_person(
        NewPerson(name="A new", employee_id="R1"), [face(3)], replace=True
    )
    assert not again.created
    assert again.person.id == first.person.id
    assert again.person.name == "A new" and again.person.department is None
    assert set(again.removed.face_ids) == old_ids
    assert again.person.face_count == 1
    assert await backend.scalar("SELECT count(*) FROM faces") == 1
    # Replacing by id with another person's employee id is a conflict.
    await repo.create_person(NewPerson(name="B", id="b-1"))
    with pytest.raises(ConflictError) as exc:
        await repo.register_person(
            NewPerson(name="B", id="b-1", employee_id="R1"), [face(4)], replace=True
        )
    assert exc.value.code == "duplicate_employee_id"


async def test_concurrent_add_for_same_new_person(backend: Backend) -> None:
    """Two processes enrolling the same new person id at once create one person."""
    other_engine = backend.new_engine()
    repos = [backend.repo, SqlGalleryRepository(other_engine)]
    try:
        results = await asyncio.gather(
            *(
                repos[i % 2].add_faces("same-new", [face(i)], create=NewPerson(name="Twin"))
                for i in range(8)
            )
        )
    finally:
        await other_engine.dispose()
    assert len(results) == 8
    assert await backend.scalar("SELECT count(*) FROM persons") == 1
    assert (await backend.repo.get_person("same-new")).face_count == 8


async def test_concurrent_register_same_employee(backend: Backend) -> None:
    other_engine = backend.new_engine()
    repos = [backend.repo, SqlGalleryRepository(other_engine)]
    try:
        outcomes = await asyncio.gather(
            *(
                repos[i % 2].register_person(NewPerson(name=f"P{i}", employee_id="C1"), [face(i)])
                for i in range(4)
            ),
            return_exceptions=True,
        )
    finally:
        await other_engine.dispose()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 3
    assert all(isinstance(e, ConflictError) and e.code == "duplicate_employee_id" for e in errors)
    assert await backend.scalar("SELECT count(*) FROM persons") == 1
