"""Vector search over the gallery: per-space isolation, multi-process consistency, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from facerec.config import Settings
from facerec.storage.factory import create_searcher
from facerec.storage.models import NewFace, NewPerson
from facerec.storage.pgvector import index_name, search_sql, vector_literal
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.protocols import FaceSearcher
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.vector_index import ExactIndex, HnswIndex
from tests.storage.helpers import COS_SPACE, L2_SPACE, Backend, vec


def l2(seed: int) -> NewFace:
    return NewFace(space=L2_SPACE.name, embedding=vec(seed), image_sha256=f"{seed:064x}")


def near(seed: int, scale: float = 0.01) -> np.ndarray:
    noise = np.random.default_rng(seed + 10_000).standard_normal(8).astype(np.float32)
    return np.asarray(vec(seed) + scale * noise, np.float32)


async def enroll(
    repo: SqlGalleryRepository, name: str, *seeds: int, collection: str = "default"
) -> str:
    person = await repo.create_person(NewPerson(name=name, collection=collection))
    await repo.add_faces(person.id, [l2(s) for s in seeds])
    return person.id


async def test_search_best_face_per_person_and_isolation(backend: Backend) -> None:
    repo = backend.repo
    await repo.create_collection("other")
    alice = await enroll(repo, "alice", 1, 2, 3)
    bob = await enroll(repo, "bob", 4)
    await enroll(repo, "carol", 1, collection="other")  # same vector, other collection
    cos_only = await repo.create_person(NewPerson(name="cos"))
    await repo.add_faces(cos_only.id, [NewFace(space=COS_SPACE.name, embedding=vec(4))])
    searchers: list[FaceSearcher] = [IndexRegistry(repo)]
    if backend.kind == "pgvector":
        searchers.append(PgVectorSearcher(backend.engine))
    for searcher in searchers:
        hits = await searcher.search("default", L2_SPACE.name, near(1), k=5)
        assert [h.person_id for h in hits] == [alice, bob]  # one hit per person
        assert hits[0].distance < 0.1 and hits[0].distance < hits[1].distance
        # An L2-space query never sees the cosine-space face of the same vector, and vice versa.
        cos_hits = await searcher.search("default", COS_SPACE.name, vec(4), k=5)
        assert [h.person_id for h in cos_hits] == [cos_only.id]
        other = await searcher.search("other", L2_SPACE.name, near(1), k=5)
        assert len(other) == 1 and other[0].person_id not in (alice, bob)
        assert await searcher.search("default", "unknown@1", vec(1), k=1) == []
        assert await searcher.search("empty", L2_SPACE.name, vec(1), k=1) == []
        queries = [near(1), vec(4), vec(99)]
        singles = [await searcher.search("default", L2_SPACE.name, q, 2) for q in queries]
        assert await searcher.search_many("default", L2_SPACE.name, queries, 2) == singles


async def test_distances_match_metric(backend: Backend) -> None:
    repo = backend.repo
    person = await repo.create_person(NewPerson(name="p"))
    await repo.add_faces(person.id, [NewFace(space=COS_SPACE.name, embedding=vec(5))])
    q = near(5, 0.3)
    expected = 1.0 - float(vec(5) @ q) / float(np.linalg.norm(vec(5)) * np.linalg.norm(q))
    hit = (await IndexRegistry(repo).search("default", COS_SPACE.name, q))[0]
    assert hit.distance == pytest.approx(expected, abs=1e-5)
    await enroll(repo, "l2", 6)
    hit = (await IndexRegistry(repo).search("default", L2_SPACE.name, near(6, 0.3)))[0]
    assert hit.distance == pytest.approx(float(np.linalg.norm(vec(6) - near(6, 0.3))), abs=1e-5)


@pytest.mark.parametrize("threshold", [1_000, 2], ids=["exact", "hnsw"])
async def test_two_processes_read_your_writes(backend: Backend, threshold: int) -> None:
    """Process A writes, process B (own engine, own index) sees it on its very next search."""
    repo_a = backend.repo
    engine_b = backend.new_engine()
    repo_b = SqlGalleryRepository(engine_b)
    changed: list[set[str] | None] = []

    async def record(persons: set[str] | None, erased: bool) -> None:
        changed.append(persons)

    options = IndexOptions(backend="memory", hnsw_threshold=threshold)
    index_a = IndexRegistry(repo_a, options)
    index_b = IndexRegistry(repo_b, options, on_persons_changed=record)
    try:
        await enroll(repo_a, "warm1", 20, 21)
        await enroll(repo_a, "warm2", 22)
        assert len(await index_b.search("default", L2_SPACE.name, near(20), k=3)) == 2
        kind = HnswIndex if threshold == 2 else ExactIndex
        assert isinstance(index_b._shards[("default", L2_SPACE.name)].index, kind)

        new_id = await enroll(repo_a, "new", 30)
        hits = await index_b.search("default", L2_SPACE.name, near(30), k=1)
        assert hits[0].person_id == new_id
        assert any(c and new_id in c for c in changed)

        erasure = await repo_a.delete_person(new_id)
        assert erasure.person_ids == (new_id,)
        hits = await index_b.search("default", L2_SPACE.name, near(30), k=5)
        assert new_id not in {h.person_id for h in hits}
        assert new_id not in index_b._shards[("default", L2_SPACE.name)].owners

        # A face deleted by B disappears from A's index too.
        warm = (await index_a.search("default", L2_SPACE.name, near(22), k=1))[0]
        await repo_b.delete_face(warm.face_id)
        hits = await index_a.search("default", L2_SPACE.name, near(22), k=5)
        assert warm.face_id not in {h.face_id for h in hits}

        # Deleting a collection elsewhere drops it here.
        await repo_a.create_collection("temp")
        await enroll(repo_a, "t", 40, collection="temp")
        assert len(await index_b.search("temp", L2_SPACE.name, near(40))) == 1
        await repo_a.delete_collection("temp", force=True)
        assert await index_b.search("temp", L2_SPACE.name, near(40)) == []
    finally:
        await repo_b.close()
        await engine_b.dispose()


async def test_falls_back_to_rebuild_when_far_behind(backend: Backend) -> None:
    repo = backend.repo
    registry = IndexRegistry(repo, IndexOptions(backend="memory", max_replay=3))
    await enroll(repo, "a", 1)
    assert len(await registry.search("default", L2_SPACE.name, near(1), k=5)) == 1
    people = [await enroll(repo, f"p{i}", 50 + i) for i in range(5)]
    hits = await registry.search("default", L2_SPACE.name, near(52), k=1)
    assert hits[0].person_id == people[2]
    # A pruned log also forces a rebuild rather than a wrong replay.
    await repo.delete_person(people[2])
    assert await repo.prune_change_log(keep_last=0) > 0
    hits = await registry.search("default", L2_SPACE.name, near(52), k=10)
    assert people[2] not in {h.person_id for h in hits} and len(hits) == 5


async def test_snapshot_restart_and_erasure(backend: Backend, tmp_path: Path) -> None:
    repo = backend.repo
    options = IndexOptions(backend="memory", hnsw_threshold=2, index_dir=tmp_path / "index")
    first = IndexRegistry(repo, options)
    ids = [await enroll(repo, f"p{i}", 60 + i) for i in range(6)]
    assert (await first.search("default", L2_SPACE.name, near(61)))[0].person_id == ids[1]
    assert await first.save() == 1
    snapshots = list((tmp_path / "index").glob("*.hnsw"))
    assert len(snapshots) == 1

    # Changes after the snapshot are replayed onto it by the next process.
    late = await enroll(repo, "late", 70)
    await repo.delete_person(ids[0])
    second = IndexRegistry(repo, options)
    assert (await second.search("default", L2_SPACE.name, near(70)))[0].person_id == late
    shard = second._shards[("default", L2_SPACE.name)]
    assert isinstance(shard.index, HnswIndex) and ids[0] not in shard.owners.values()
    # The replay erased a face: the snapshot holding it is gone until the next save.
    assert not snapshots[0].exists()
    assert await second.save() == 1
    snapshots = list((tmp_path / "index").glob("*.hnsw"))
    third = IndexRegistry(repo, options)
    await repo.delete_person(ids[3])  # erasure seen by a process with a loaded snapshot
    hits = await third.search("default", L2_SPACE.name, near(63), k=10)
    assert ids[3] not in {h.person_id for h in hits}
    assert not snapshots[0].exists()

    # A process that never loaded this index still removes its snapshot on erasure.
    assert await third.save() == 1
    idle = IndexRegistry(repo, options)
    await idle.sync()
    await repo.delete_person(ids[4])
    assert list((tmp_path / "index").glob("*.hnsw"))
    await idle.sync()
    assert not list((tmp_path / "index").glob("*.hnsw"))
    # Deleting the collection removes its snapshots too.
    assert await third.search("default", L2_SPACE.name, near(65))
    await third.close()
    assert list((tmp_path / "index").glob("*.hnsw"))
    await repo.create_collection("c2")
    await enroll(repo, "c2p", 90, collection="c2")
    await enroll(repo, "c2q", 91, 92, collection="c2")  # 3 faces: above hnsw_threshold
    assert await third.search("c2", L2_SPACE.name, near(90))
    assert await third.save() == 2
    await repo.delete_collection("c2", force=True)
    await idle.sync()
    assert len(list((tmp_path / "index").glob("*.hnsw"))) == 1


def test_index_options_from_settings(tmp_path: Path) -> None:
    settings = Settings(index={"backend": "memory", "hnsw_threshold": 5, "index_dir": tmp_path})
    options = IndexOptions.from_settings(settings)
    assert (options.backend, options.hnsw_threshold, options.index_dir) == ("memory", 5, tmp_path)
    periodic = Settings(index={"snapshot_every_s": 12.5, "snapshot_every_changes": 7})
    snapshots = IndexOptions.from_settings(periodic)
    assert (snapshots.snapshot_every_s, snapshots.snapshot_every_changes) == (12.5, 7)
    assert (snapshots.dtype, snapshots.rescore, snapshots.mmap_snapshots) == ("auto", 4, False)
    graph = Settings(
        index={
            "hnsw_dtype": "f16",
            "hnsw_rescore": 8,
            "hnsw_expansion_search": 96,
            "hnsw_mmap_snapshots": True,
        }
    )
    tuned = IndexOptions.from_settings(graph)
    assert (tuned.dtype, tuned.rescore, tuned.expansion_search, tuned.mmap_snapshots) == (
        "f16",
        8,
        96,
        True,
    )


async def test_create_searcher_backends(backend: Backend) -> None:
    auto = await create_searcher(backend.repo, IndexOptions(backend="auto"))
    expected = PgVectorSearcher if backend.kind == "pgvector" else IndexRegistry
    assert isinstance(auto, expected)
    assert isinstance(
        await create_searcher(backend.repo, IndexOptions(backend="memory")), IndexRegistry
    )
    if backend.kind != "pgvector":
        with pytest.raises(Exception, match="pgvector"):
            await create_searcher(backend.repo, IndexOptions(backend="pgvector"))


@pytest.mark.parametrize(
    "backend", [pytest.param("pgvector", marks=pytest.mark.pgvector)], indirect=True
)
async def test_pgvector_consistent_and_uses_hnsw(backend: Backend) -> None:
    engine_b = backend.new_engine()
    try:
        searcher_b = PgVectorSearcher(engine_b)
        pid = await enroll(backend.repo, "x", 80)
        assert (await searcher_b.search("default", L2_SPACE.name, near(80)))[0].person_id == pid
        await backend.repo.delete_person(pid)
        assert await searcher_b.search("default", L2_SPACE.name, near(80)) == []
        await enroll(backend.repo, "y", 81)
        # The partial HNSW index of (collection, space) answers the search query.
        async with backend.engine.begin() as conn:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
            sql = "EXPLAIN " + search_sql(L2_SPACE)
            params = {"q": vector_literal(vec(81)), "c": "default", "s": L2_SPACE.name, "k": 5}
            plan = "\n".join(r[0] for r in await conn.execute(text(sql), params))
        assert index_name("default", L2_SPACE.name) in plan
    finally:
        await engine_b.dispose()


async def test_count_and_template_reads(backend: Backend) -> None:
    """What identification reads besides the search: faces per (collection, space), several
    persons in one query, and every face of the candidate persons with its embedding."""
    repo = backend.repo
    await repo.create_collection("other")
    alice = await enroll(repo, "alice", 1, 2, 3)
    bob = await enroll(repo, "bob", 4)
    await enroll(repo, "carol", 5, collection="other")
    searchers: list[FaceSearcher] = [IndexRegistry(repo)]
    if backend.kind == "pgvector":
        searchers.append(PgVectorSearcher(backend.engine))
    for searcher in searchers:
        assert await searcher.count("default", L2_SPACE.name) == 4
        assert await searcher.count("other", L2_SPACE.name) == 1
        assert await searcher.count("default", COS_SPACE.name) == 0
        assert await searcher.count("empty", "unknown@1") == 0
    persons = await repo.get_persons([bob, alice, "nobody", alice])
    assert set(persons) == {alice, bob} and persons[alice].face_count == 3
    assert await repo.get_persons([]) == {}
    faces = await repo.faces_of([alice, bob], L2_SPACE.name)
    assert sorted(f.person_id for f in faces) == sorted([alice] * 3 + [bob])
    assert all(f.embedding is not None and f.embedding.shape == (8,) for f in faces)
    assert await repo.faces_of([alice], COS_SPACE.name) == []
    await repo.delete_person(bob)
    for searcher in searchers:
        assert await searcher.count("default", L2_SPACE.name) == 3
