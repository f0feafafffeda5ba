"""Big galleries: indexes built before ready, counts kept as the log is applied, HNSW built in
the background, snapshots written while running, and no COUNT per recognize."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from facerec.storage import hnsw_snapshot
from facerec.storage.models import EmbeddingSpace, NewFace, NewPerson
from facerec.storage.protocols import Change, FaceVector, GallerySize, IndexRows, LogState
from facerec.storage.quantised_rows import ExactRows
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.snapshots import PARTIAL_STALE_S, SnapshotStore
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.vector_index import ExactIndex, HnswIndex
from tests.domain.test_services import World, at, world  # noqa: F401 (fixture)
from tests.storage.helpers import L2_SPACE, Backend, vec

SPACE = L2_SPACE.name


class CountingSource:
    """The repository as an IndexSource, counting full index builds."""

    def __init__(self, repo: SqlGalleryRepository) -> None:
        self.repo = repo
        self.index_rows_calls = 0
        self.log_state_calls = 0

    async def log_state(self) -> LogState:
        self.log_state_calls += 1
        return await self.repo.log_state()

    async def instance_id(self) -> int:
        return await self.repo.instance_id()

    async def changes_since(self, seq: int, limit: int) -> list[Change]:
        return await self.repo.changes_since(seq, limit)

    async def index_rows(self, collection: str, space: str) -> IndexRows:
        self.index_rows_calls += 1
        return await self.repo.index_rows(collection, space)

    async def index_keys(self) -> list[tuple[str, str]]:
        return await self.repo.index_keys()

    async def face_vectors(self, face_ids: Iterable[str]) -> list[FaceVector]:
        return await self.repo.face_vectors(face_ids)

    async def get_space(self, name: str) -> EmbeddingSpace:
        return await self.repo.get_space(name)


async def enroll(
    repo: SqlGalleryRepository, name: str, *seeds: int, collection: str = "default"
) -> str:
    person = await repo.create_person(NewPerson(name=name, collection=collection))
    faces = [NewFace(space=SPACE, embedding=vec(s), image_sha256=f"{s:064x}") for s in seeds]
    await repo.add_faces(person.id, faces)
    return person.id


async def wait_for(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_warm_builds_every_shard_before_the_first_search(backend: Backend) -> None:
    repo = backend.repo
    await repo.create_collection("other")
    alice = await enroll(repo, "alice", 1, 2)
    await enroll(repo, "carol", 3, collection="other")
    source = CountingSource(repo)
    registry = IndexRegistry(source, IndexOptions(backend="memory"))
    assert await registry.warm() == 2
    built = source.index_rows_calls
    assert built == 2
    hits = await registry.search("default", SPACE, vec(1), k=3)
    assert [h.person_id for h in hits] == [alice]
    assert await registry.search("other", SPACE, vec(3), k=3)
    assert await registry.search("empty", SPACE, vec(3)) == []
    assert await registry.gallery_size("default", SPACE) == GallerySize(1, 2)
    # A (collection, space) that gets its first face later is created from the change log.
    await repo.create_collection("late")
    late = await enroll(repo, "late", 4, collection="late")
    assert (await registry.search("late", SPACE, vec(4)))[0].person_id == late
    assert source.index_rows_calls == built
    await registry.close()


async def test_counts_follow_another_process(backend: Backend) -> None:
    repo_a = backend.repo
    engine_b = backend.new_engine()
    repo_b = SqlGalleryRepository(engine_b)
    try:
        await enroll(repo_a, "a", 1, 2)
        reader = IndexRegistry(repo_b, IndexOptions(backend="memory"))
        await reader.warm()
        assert await reader.gallery_size("default", SPACE) == GallerySize(1, 2)
        b = await enroll(repo_a, "b", 3)
        c = await enroll(repo_a, "c", 4, 5)
        assert await reader.gallery_size("default", SPACE) == GallerySize(3, 5)
        faces = await repo_a.list_faces(c)
        await repo_a.delete_face(faces[0].id)  # c keeps one face: still a person here
        assert await reader.gallery_size("default", SPACE) == GallerySize(3, 4)
        await repo_a.delete_person(b)  # an erasure
        assert await reader.gallery_size("default", SPACE) == GallerySize(2, 3)
        await repo_a.create_collection("temp")
        await enroll(repo_a, "t", 6, 7, collection="temp")
        assert await reader.gallery_size("temp", SPACE) == GallerySize(1, 2)
        await repo_a.delete_collection("temp", force=True)
        assert await reader.gallery_size("temp", SPACE) == GallerySize(0, 0)
        assert await reader.count("default", SPACE) == 3
    finally:
        await repo_b.close()
        await engine_b.dispose()


async def test_hnsw_built_in_the_background_while_exact_answers(backend: Backend) -> None:
    repo = backend.repo
    people = [await enroll(repo, f"p{i}", 10 + i) for i in range(5)]
    registry = IndexRegistry(repo, IndexOptions(backend="memory", hnsw_threshold=3))
    await registry.warm()
    shard = registry._shards[("default", SPACE)]
    assert isinstance(shard.index, ExactIndex)  # answers at once; the graph comes later
    assert (await registry.search("default", SPACE, vec(12)))[0].person_id == people[2]
    # Changes during the build reach the graph that replaces the exact index.
    extra = await enroll(repo, "extra", 20)
    await repo.delete_person(people[0])
    await registry.sync()
    await wait_for(lambda: isinstance(shard.index, HnswIndex))
    await registry.sync()
    assert (await registry.search("default", SPACE, vec(20)))[0].person_id == extra
    hits = await registry.search("default", SPACE, vec(10), k=10)
    assert people[0] not in {h.person_id for h in hits}
    assert await registry.gallery_size("default", SPACE) == GallerySize(5, 5)
    await registry.close()


async def snapshotted(
    repo: SqlGalleryRepository, directory: Path
) -> tuple[IndexRegistry, IndexOptions]:
    """Four persons enrolled, and a registry (running) once its periodic snapshot is written."""
    options = IndexOptions(
        backend="memory", hnsw_threshold=2, index_dir=directory, snapshot_every_s=0.05
    )
    for i in range(4):
        await enroll(repo, f"p{i}", 30 + i)
    registry = IndexRegistry(repo, options)
    await registry.warm()
    await wait_for(lambda: bool(list(directory.glob("*.hnsw"))))
    return registry, options


async def test_snapshot_written_periodically_without_shutdown(
    backend: Backend, tmp_path: Path
) -> None:
    repo = backend.repo
    directory = tmp_path / "index"
    registry, options = await snapshotted(repo, directory)
    # A second process (or a restart after a crash) loads it instead of building.
    source = CountingSource(repo)
    worker = IndexRegistry(source, options)
    await worker.warm()
    assert source.index_rows_calls == 0
    assert isinstance(worker._shards[("default", SPACE)].index, HnswIndex)
    assert await worker.gallery_size("default", SPACE) == GallerySize(4, 4)
    await worker.close()
    await registry.close()


async def test_a_start_deletes_partial_snapshots_of_stopped_writers(
    backend: Backend, tmp_path: Path
) -> None:
    """A writer killed mid-write leaves its partial snapshot (``.tmp``): vectors of faces that
    may be erased later, gigabytes at scale. The next start deletes it, but not one another
    process is still writing (locked), nor another database's."""
    repo = backend.repo
    directory = tmp_path / "index"
    first, options = await snapshotted(repo, directory)
    await first.close()
    (snapshot,) = directory.glob("*.hnsw")
    crashed = snapshot.with_name(snapshot.name + "k1ll3d.tmp")
    crashed.write_bytes(snapshot.read_bytes()[:100])
    writing = snapshot.with_name(snapshot.name + "wr1t1ng.tmp")
    writing.write_bytes(b"partial")
    other = directory / ("0" * 16 + "-" + snapshot.name.split("-", 1)[1] + "0th3r.tmp")
    other.write_bytes(b"another database's")
    with writing.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # its writer, still at work
        restarted = IndexRegistry(repo, options)
        await restarted.warm()
        assert not crashed.exists()
        assert writing.exists() and other.exists() and snapshot.exists()
        assert isinstance(restarted._shards[("default", SPACE)].index, HnswIndex)
        await restarted.close()


async def test_recognize_counts_no_persons(world: World) -> None:  # noqa: F811
    alice = await world.enroll("alice", at(0.3))
    await world.enroll("bob", at(2.0, axis=1))
    await world.searcher.warm()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lower())

    engine = world.repo.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        result = await world.recognize(at(0.0))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert result.best is not None and result.best.person_id == alice
    assert result.point.gallery_size == 2 and result.point.comparisons == 2
    assert statements
    # Person records of the hits carry their face counts (bounded by top_k); nothing else
    # counts, and nothing counts the persons of the collection.
    counting = [s for s in statements if "count(" in s and "persons.id in" not in s]
    assert not counting, counting
    assert not [s for s in statements if "persons.collection = collections.name" in s]


async def test_restart_from_quantised_mapped_snapshot_then_erase(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart serves from the snapshot (i8 graph, exact rows mapped) without building, with
    exact distances, and an erasure seen after the load leaves no trace in memory or on disk;
    the mapped rows are copied into memory in a thread, not on the event loop."""
    copied_on_main: list[bool] = []
    detach = ExactRows.detach

    def recorded(rows: ExactRows) -> None:
        if isinstance(rows.data, np.memmap):
            copied_on_main.append(threading.current_thread() is threading.main_thread())
        detach(rows)

    monkeypatch.setattr(ExactRows, "detach", recorded)
    repo = backend.repo
    directory = tmp_path / "index"
    options = IndexOptions(
        backend="memory", hnsw_threshold=2, index_dir=directory, dtype="i8", mmap_snapshots=True
    )
    people = [await enroll(repo, f"p{i}", 40 + i) for i in range(5)]
    first = IndexRegistry(repo, options)
    await first.warm()
    await wait_for(lambda: isinstance(first._shards[("default", SPACE)].index, HnswIndex))
    await first.save()  # (or the build's own snapshot, written as it was swapped in)
    assert list(directory.glob("*.hnsw"))
    await first.close()

    source = CountingSource(repo)
    restarted = IndexRegistry(source, options)
    await restarted.warm()
    assert source.index_rows_calls == 0  # loaded, not rebuilt
    assert await restarted.save() == 0  # the snapshot there is this graph: not written again
    index = restarted._shards[("default", SPACE)].index
    assert isinstance(index, HnswIndex) and index.dtype == "i8" and index._exact is not None
    hit = (await restarted.search("default", SPACE, vec(42) + 0.01))[0]
    assert hit.person_id == people[2]
    assert abs(hit.distance - float(np.linalg.norm(vec(42) + 0.01 - vec(42)))) < 1e-5

    await repo.delete_person(people[2])
    hits = await restarted.search("default", SPACE, vec(42), k=5)
    assert people[2] not in {h.person_id for h in hits}
    assert vec(42).tobytes() not in index._exact.data.tobytes()
    assert not list(directory.glob("*.hnsw"))  # the snapshot holding the face is deleted
    assert copied_on_main == [False]
    assert await restarted.save() == 1
    assert not any(vec(42).tobytes() in p.read_bytes() for p in directory.glob("*.hnsw"))
    await restarted.close()


async def test_snapshot_of_another_graph_type_is_rebuilt(backend: Backend, tmp_path: Path) -> None:
    repo = backend.repo
    directory = tmp_path / "index"
    for i in range(4):
        await enroll(repo, f"p{i}", 50 + i)
    f32 = IndexOptions(backend="memory", hnsw_threshold=2, index_dir=directory, dtype="f32")
    first = IndexRegistry(repo, f32)
    await first.search("default", SPACE, vec(50))  # built in the request: not warmed
    assert await first.save() == 1
    source = CountingSource(repo)
    i8 = IndexRegistry(source, replace(f32, dtype="i8"))
    await i8.warm()
    assert source.index_rows_calls == 1  # the f32 snapshot was not used
    await i8.close()


async def test_search_many_catches_up_once_and_answers_like_search(backend: Backend) -> None:
    """A batch's duplicate checks: each query answered as ``search`` answers it, with one
    catch-up on the change log for all of them instead of one per query."""
    repo = backend.repo
    for i in range(4):
        await enroll(repo, f"p{i}", 70 + i)
    source = CountingSource(repo)
    registry = IndexRegistry(source, IndexOptions(backend="memory"))
    queries = [vec(70), vec(72), vec(99)]
    singles = [await registry.search("default", SPACE, q, 2) for q in queries]
    before = source.log_state_calls
    many = await registry.search_many("default", SPACE, queries, 2)
    assert many == singles
    assert source.log_state_calls - before == 1
    assert await registry.search_many("default", SPACE, [], 2) == []
    await registry.close()


def test_without_file_locks_a_partial_snapshot_is_deleted_once_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the file system refuses locks, a partial snapshot is taken as abandoned only once
    untouched for ``PARTIAL_STALE_S`` (a writer at work touches it)."""

    def no_locks(fd: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(hnsw_snapshot.fcntl, "flock", no_locks)
    store = SnapshotStore(tmp_path)
    fresh = store.path("default", SPACE).with_suffix(".hnswa1.tmp")
    stale = store.path("other", SPACE).with_suffix(".hnswb2.tmp")
    fresh.write_bytes(b"being written")
    stale.write_bytes(b"left by a crash")
    long_ago = time.time() - PARTIAL_STALE_S - 60
    os.utime(stale, (long_ago, long_ago))
    assert store.sweep_partial() == 1
    assert fresh.exists() and not stale.exists()
