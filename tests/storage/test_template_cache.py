"""Persons' templates read through this process's cache: exact, bounded, and never older than the
change log the search applied (another process's erasure included)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.cache.memory import MemoryCache
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.persons import PersonService
from facerec.domain.templates import Template, TemplateCache
from facerec.storage.milvus import MilvusSearcher
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.values import Erasure, Face
from tests.storage.helpers import L2_SPACE, Backend, vec
from tests.storage.test_registry import enroll, near


def _face(person: str, seed: int, quality: float) -> Face:
    return Face(
        id=f"{person}-{seed}",
        person_id=person,
        collection="default",
        space=L2_SPACE.name,
        quality=quality,
        bbox=None,
        image_sha256=None,
        created_at=datetime.now(UTC),
        embedding=vec(seed),
    )


class CountingFaces:
    """A repository's ``faces_of`` over fixed faces, counting the persons it was asked for."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces
        self.asked: list[list[str]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, person_ids: list[str], space: str) -> list[Face]:
        self.asked.append(list(person_ids))
        found = [f for f in self.faces if f.person_id in person_ids and f.space == space]
        if self.gate is not None:
            await self.gate.wait()
        return found


async def test_templates_are_exact_and_read_once() -> None:
    faces = [_face("a", 1, 71.25), _face("a", 2, 0.1 + 0.2), _face("b", 3, 99.0)]
    faces_of = CountingFaces(faces)
    cache = TemplateCache(60.0)
    first = await cache.templates(["a", "b", "nobody"], L2_SPACE.name, 8, faces_of)
    again = await cache.templates(["b", "a"], L2_SPACE.name, 8, faces_of)
    assert faces_of.asked == [["a", "b", "nobody"]]  # the second call read nothing
    assert set(first) == set(again) == {"a", "b"}
    for person in ("a", "b"):
        np.testing.assert_array_equal(again[person].vectors, first[person].vectors)
        assert again[person].qualities.tolist() == first[person].qualities.tolist()
    np.testing.assert_array_equal(again["a"].vectors, np.stack([vec(1), vec(2)]))
    assert again["a"].qualities.tolist() == [71.25, 0.1 + 0.2]  # float64, not rounded
    # Another space is another template.
    assert await cache.templates(["a"], "other@1", 8, faces_of) == {}


async def test_a_purge_during_a_read_wins_over_it() -> None:
    faces_of = CountingFaces([_face("a", 1, 50.0)])
    faces_of.gate = asyncio.Event()
    cache = TemplateCache(60.0)
    reading = asyncio.create_task(cache.templates(["a"], L2_SPACE.name, 8, faces_of))
    await asyncio.sleep(0)
    await cache.purge(Erasure(face_ids=("a-1",), updated_person_ids=("a",)))
    faces_of.gate.set()
    assert set(await reading) == {"a"}  # the caller gets what it read...
    assert len(cache.store) == 0  # ...but it is not kept
    faces_of.gate = None
    await cache.templates(["a"], L2_SPACE.name, 8, faces_of)
    assert len(cache.store) == 1
    await cache.purge(Erasure(person_ids=("a",)))
    assert len(cache.store) == 0
    await cache.templates(["a"], L2_SPACE.name, 8, faces_of)
    await cache.purge_all()
    assert len(cache.store) == 0 and len(faces_of.asked) == 3


async def test_the_template_cache_stays_within_its_bytes() -> None:
    faces = [_face(f"p{n}", n, 50.0) for n in range(200)]
    budget = 8 * 1024
    cache = TemplateCache(60.0, max_bytes=budget)
    faces_of = CountingFaces(faces)
    for n in range(200):
        await cache.templates([f"p{n}"], L2_SPACE.name, 8, faces_of)
        assert cache.store.nbytes <= budget
    assert 0 < len(cache.store) < 200
    template = Template(np.stack([vec(1), vec(2)]), np.array([1.5, 2.5]))
    assert Template.from_bytes(template.to_bytes(), 8).qualities.tolist() == [1.5, 2.5]


async def test_another_process_erasing_a_face_reaches_the_cached_template(
    backend: Backend,
) -> None:
    """Process B caches alice's template; process A erases one of her faces; B's next search
    applies the change log, which purges the template before B scores anyone."""
    repo_a = backend.repo
    engine_b = backend.new_engine()
    repo_b = SqlGalleryRepository(engine_b)
    cache_b = PersonCache(MemoryCache(), 60.0)
    index_b = IndexRegistry(
        repo_b, IndexOptions(backend="memory"), on_persons_changed=cache_b.purge_persons
    )
    persons_b = PersonService(repository=repo_b, searcher=index_b, cache=cache_b)
    try:
        alice = await enroll(repo_a, "alice", 50, 51)
        hits = await index_b.search("default", L2_SPACE.name, near(50), k=1)
        assert hits[0].person_id == alice
        held = await persons_b.templates([alice], L2_SPACE.name, 8)
        assert len(held[alice].qualities) == 2 and len(cache_b.templates.store) == 1

        faces = await repo_a.faces_of([alice], L2_SPACE.name)
        erased = next(f for f in faces if np.array_equal(f.embedding, vec(51)))
        await repo_a.delete_face(erased.id)

        await index_b.search("default", L2_SPACE.name, near(50), k=1)  # applies the change log
        assert len(cache_b.templates.store) == 0
        held = await persons_b.templates([alice], L2_SPACE.name, 8)
        np.testing.assert_array_equal(held[alice].vectors, vec(50)[None, :])
        kept = [entry.value for entry in cache_b.templates.store._entries.values()]
        assert kept and all(vec(51).astype("<f4").tobytes() not in value for value in kept)
    finally:
        await repo_b.close()
        await engine_b.dispose()


async def test_without_a_change_log_templates_are_read_from_the_database_each_time() -> None:
    """A searcher that reads no change log (pgvector's, built without one) would let a kept
    template outlive another replica's erasure: its persons' faces are read at every recognize.
    The service always builds its searchers with the log (tests/storage/test_change_feed.py)."""
    assert PgVectorSearcher(cast(AsyncEngine, None)).applies_change_log is False
    assert IndexRegistry.applies_change_log is True and MilvusSearcher.applies_change_log is True
    faces_of = CountingFaces([_face("a", 1, 50.0)])
    cache = PersonCache(MemoryCache(), 60.0)
    persons = PersonService(
        repository=cast(SqlGalleryRepository, SimpleNamespace(faces_of=faces_of)),
        searcher=cast(PgVectorSearcher, SimpleNamespace(applies_change_log=False)),
        cache=cache,
    )
    for _ in range(2):
        held = await persons.templates(["a"], L2_SPACE.name, 8)
        np.testing.assert_array_equal(held["a"].vectors, vec(1)[None, :])
    assert len(faces_of.asked) == 2 and len(cache.templates.store) == 0
