"""Processes sharing an index_dir build each graph once: one builds, the others load its snapshot.

Two registries in this process stand for two worker processes: each has its own engine, and
``flock`` locks belong to open files, so the two conflict as two processes' would.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facerec.config import DatabaseSettings, Settings
from facerec.storage import build_claims, index_builds
from facerec.storage.engine import create_engine
from facerec.storage.index_builds import IndexBuilds
from facerec.storage.migrate import upgrade_database
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.vector_index import ExactIndex, HnswIndex
from tests.storage.helpers import L2_SPACE, Backend, vec
from tests.storage.test_registry_startup import SPACE, enroll, wait_for

KEY = ("default", SPACE)


class Builds:
    """``IndexBuilds.hnsw_from``, counted by registry, held open until ``release`` is set;
    the first ``failing`` builds raise once released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failing: int = 0) -> None:
        self.release = threading.Event()
        self.by: list[int] = []  # id() of the IndexBuilds of each build started
        self.failing = failing
        build = IndexBuilds.hnsw_from

        def counted(builds: IndexBuilds, *args: Any) -> HnswIndex:
            self.by.append(id(builds))
            assert self.release.wait(30)
            if len(self.by) <= self.failing:
                raise RuntimeError("out of memory (a test's)")
            return build(builds, *args)

        monkeypatch.setattr(index_builds.IndexBuilds, "hnsw_from", counted)


def options(tmp_path: Path, threshold: int = 4) -> IndexOptions:
    directory = tmp_path / "index"
    return IndexOptions(backend="memory", hnsw_threshold=threshold, index_dir=directory)


@dataclass
class Workers:
    """Two workers on one gallery and one ``index_dir``; tests write through ``repo``."""

    repo: SqlGalleryRepository
    a: IndexRegistry
    b: IndexRegistry
    monkeypatch: pytest.MonkeyPatch
    held: list[Builds] = field(default_factory=list)

    def hold_builds(self, failing: int = 0) -> Builds:
        builds = Builds(self.monkeypatch, failing)
        self.held.append(builds)
        return builds

    async def first_build_held(self, builds: Builds) -> None:
        """Start ``a`` then ``b``: a's first graph build held open by ``builds``, b waiting."""
        await self.a.warm()
        await wait_for(lambda: len(builds.by) == 1)
        await self.b.warm()
        await wait_for(lambda: KEY in self.b._builds._waiting)


@pytest.fixture
async def workers(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Workers]:
    """The second worker sees the gallery through its own engine; claims are polled often."""
    monkeypatch.setattr(build_claims, "POLL_S", 0.02)
    second = SqlGalleryRepository(backend.new_engine())
    a = IndexRegistry(backend.repo, options(tmp_path))
    found = Workers(backend.repo, a, IndexRegistry(second, options(tmp_path)), monkeypatch)
    try:
        yield found
    finally:
        for builds in found.held:
            builds.release.set()
        await found.a.close()
        await found.b.close()
        await second.close()


async def test_one_process_builds_the_first_graph_the_other_loads_it(
    workers: Workers, tmp_path: Path
) -> None:
    """Both start on a gallery past the threshold: one builds while the other waits, answering
    exactly meanwhile, and then loads the graph the first wrote, with the changes made during
    the build (a person enrolled, one erased) applied. The waiting one learns of the erasure
    after the snapshot was written, which does not hold the erased face: it keeps it."""
    repo, a, b = workers.repo, workers.a, workers.b
    people = [await enroll(repo, f"p{i}", 10 + i) for i in range(6)]
    builds = workers.hold_builds()
    await workers.first_build_held(builds)
    assert isinstance(b._shards[KEY].index, ExactIndex)
    assert (await b.search(*KEY, vec(12)))[0].person_id == people[2]
    late = await enroll(repo, "late", 40)
    await repo.delete_person(people[5])
    await a.sync()  # (b applies the erasure only after a's snapshot is written)
    builds.release.set()
    await wait_for(lambda: isinstance(b._shards[KEY].index, HnswIndex))
    assert builds.by == [id(a._builds)]  # one build, in a
    (snapshot,) = (tmp_path / "index").glob("*.hnsw")  # kept: written after the erasure
    assert HnswIndex.load(snapshot).built_faces == 6
    graph = b._shards[KEY].index
    assert isinstance(graph, HnswIndex) and graph is not a._shards[KEY].index
    assert graph.built_faces == 6 and len(graph) == 6
    assert (await b.search(*KEY, vec(40)))[0].person_id == late
    hits = await b.search(*KEY, vec(15), k=10)
    assert people[5] not in {h.person_id for h in hits} and len(hits) == 6
    assert await b.gallery_size(*KEY) == await a.gallery_size(*KEY)
    assert not b._builds._tasks and b._shards[KEY].pending is None


async def test_when_the_builder_fails_the_waiting_process_builds(workers: Workers) -> None:
    """The claim is released when a build fails (or its process dies): the process that
    waited builds the graph itself, and the one that failed loads it at its next change."""
    repo, a, b = workers.repo, workers.a, workers.b
    for i in range(6):
        await enroll(repo, f"p{i}", 10 + i)
    builds = workers.hold_builds(failing=1)
    await workers.first_build_held(builds)
    builds.release.set()
    await wait_for(lambda: isinstance(b._shards[KEY].index, HnswIndex))
    assert builds.by == [id(a._builds), id(b._builds)]
    assert isinstance(a._shards[KEY].index, ExactIndex)  # its build failed
    newcomer = await enroll(repo, "newcomer", 50)
    await a.sync()  # a change: a tries again, and finds b's graph
    await wait_for(lambda: isinstance(a._shards[KEY].index, HnswIndex))
    assert len(builds.by) == 2
    assert (await a.search(*KEY, vec(50)))[0].person_id == newcomer
    assert len(a._shards[KEY].index) == 7


async def test_a_rebuild_is_shared_too(workers: Workers) -> None:
    """A graph grown to twice its build is rebuilt by one process; the other keeps answering
    with its grown graph until it loads the rebuilt one."""
    repo, a, b = workers.repo, workers.a, workers.b
    for i in range(5):
        await enroll(repo, f"p{i}", 10 + i)
    await a.warm()
    await wait_for(lambda: isinstance(a._shards[KEY].index, HnswIndex))
    builds = workers.hold_builds()
    await b.warm()  # from a's snapshot
    grown = b._shards[KEY].index
    assert isinstance(grown, HnswIndex) and grown.built_faces == 5 and not builds.by
    people = [await enroll(repo, f"q{i}", 20 + i) for i in range(5)]
    await a.sync()
    await wait_for(lambda: len(builds.by) == 1)
    await b.sync()
    await wait_for(lambda: KEY in b._builds._waiting)
    assert (await b.search(*KEY, vec(24)))[0].person_id == people[4]  # the grown graph
    builds.release.set()
    await wait_for(lambda: b._shards[KEY].index is not grown)
    rebuilt = b._shards[KEY].index
    assert isinstance(rebuilt, HnswIndex) and rebuilt.built_faces == 10
    assert builds.by == [id(a._builds)]
    assert (await b.search(*KEY, vec(24)))[0].person_id == people[4]


async def test_waiting_for_another_process_holds_up_neither_snapshots_nor_shutdown(
    workers: Workers,
) -> None:
    a, b = workers.a, workers.b
    for i in range(6):
        await enroll(workers.repo, f"p{i}", 10 + i)
    builds = workers.hold_builds()
    await workers.first_build_held(builds)
    assert await asyncio.wait_for(b.save(), 10) == 0  # nothing of its own to wait for
    await asyncio.wait_for(b.close(), 10)
    assert not b._builds._tasks
    builds.release.set()
    await a.close()  # (waits for its first graph)
    assert a.loaded() == {KEY: 6} and isinstance(a._shards[KEY].index, HnswIndex)
    assert builds.by == [id(a._builds)]


async def test_an_index_dir_without_locks_still_gets_its_graphs(
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file system that refuses ``flock`` (ENOLCK: some network file systems) does not leave
    the gallery on exact search: the process builds as if alone, and says so once."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # (build_claims calls fcntl.flock)
    people = [await enroll(backend.repo, f"p{i}", 10 + i) for i in range(6)]
    registry = IndexRegistry(backend.repo, options(tmp_path))
    try:
        with caplog.at_level(logging.WARNING, logger=build_claims.__name__):
            await registry.warm()
            await wait_for(lambda: isinstance(registry._shards[KEY].index, HnswIndex))
            await registry.save()
        refused = [r for r in caplog.records if "cannot hold build claims" in r.getMessage()]
        assert len(refused) == 1
        assert len(list((tmp_path / "index").glob("*.hnsw"))) == 1
        assert (await registry.search(*KEY, vec(12)))[0].person_id == people[2]
    finally:
        await registry.close()


async def test_an_index_dir_that_cannot_be_written_still_gets_its_graphs(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``index_dir`` where nothing can be created (here a file, not a directory) grants the
    build without a lock; the graph serves although its snapshot cannot be written, and the
    logs say so, not that the build failed."""
    people = [await enroll(backend.repo, f"p{i}", 10 + i) for i in range(6)]
    unusable = options(tmp_path)
    assert unusable.index_dir is not None
    unusable.index_dir.write_bytes(b"")
    registry = IndexRegistry(backend.repo, unusable)
    try:
        with caplog.at_level(logging.WARNING):
            await registry.warm()
            await wait_for(lambda: isinstance(registry._shards[KEY].index, HnswIndex))
            await wait_for(lambda: not registry._builds._tasks)
        said = [r.getMessage() for r in caplog.records]
        assert sum("cannot hold build claims" in m for m in said) == 1
        assert any("was not written" in m for m in said)
        assert not any("failed" in m for m in said)
        assert (await registry.search(*KEY, vec(12)))[0].person_id == people[2]
    finally:
        await registry.close()


def test_removing_a_collection_removes_its_claim_files(tmp_path: Path) -> None:
    """Claim files stay while their collection does (a space's snapshot deleted keeps its
    claim file); removing the collection deletes them with its snapshots."""
    store = SnapshotStore(tmp_path)
    claims = build_claims.BuildClaims(store)
    for key in [("c", "s1"), ("c", "s2"), ("other", "s1")]:
        claim = claims.try_claim(key)
        assert claim is not None
        claim.release()
    store.forget("c", "s1")
    assert store.claim_path("c", "s1").exists()
    store.forget("c")
    assert not store.claim_path("c", "s1").exists()
    assert not store.claim_path("c", "s2").exists()
    assert store.claim_path("other", "s1").exists()


def test_a_snapshot_of_a_larger_build_is_not_overwritten(tmp_path: Path) -> None:
    """A process whose graph is older (built with fewer faces) than the one another process
    wrote keeps that snapshot: it loads it rather than replaces it."""
    store = SnapshotStore(tmp_path)
    rows = np.stack([vec(i) for i in range(12)])
    newer = HnswIndex(8, "l2", threads=1)
    newer.add([f"f{i}" for i in range(12)], rows)
    older = HnswIndex(8, "l2", threads=1)
    older.add([f"f{i}" for i in range(6)], rows[:6])
    older.add([f"f{i}" for i in range(6, 12)], rows[6:])
    older.built_faces = 6
    assert store.write("c", "s", newer, 5, {})
    written = store.path("c", "s").read_bytes()
    assert not store.write("c", "s", older, 7, {})
    assert store.path("c", "s").read_bytes() == written
    assert store.built_faces("c", "s") == 12
    store.forget("c", "s")
    assert store.write("c", "s", older, 7, {}) and store.built_faces("c", "s") == 6


def test_a_removal_deletes_only_older_snapshots(tmp_path: Path) -> None:
    """A removal (seq R) deletes a snapshot written before it, which may hold the face, and
    keeps one written at or after it, by a process that had applied it: a lagging worker
    learning of the removal late does not delete another worker's new snapshot."""
    store = SnapshotStore(tmp_path)
    graph = HnswIndex(8, "l2", threads=1)
    graph.add(["f1", "f2"], np.stack([vec(1), vec(2)]))
    assert store.write("c", "s", graph, 10, {})
    store.forget("c", "s", before=10)
    store.forget("c", "s", before=7)
    assert store.path("c", "s").exists()
    store.forget("c", "s", before=11)
    assert not store.path("c", "s").exists()
    assert store.write("c", "s", graph, 10, {})
    store.forget("c", "s")  # without a seq: always
    assert not store.path("c", "s").exists()


EXIT_DURING_A_BUILD = """
import asyncio, sys, threading
from facerec.config import DatabaseSettings
from facerec.storage import index_builds
from facerec.storage.engine import create_engine
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository

started, never = threading.Event(), threading.Event()

def never_ending(self, *args):  # a build that never ends
    started.set()
    never.wait()

index_builds.IndexBuilds.hnsw_from = never_ending

async def main() -> None:
    engine = create_engine(DatabaseSettings(url=sys.argv[1]))
    options = IndexOptions(backend="memory", hnsw_threshold=2, build_threads=1)
    registry = IndexRegistry(SqlGalleryRepository(engine), options)
    await registry.warm()
    for _ in range(1000):  # (bounded: 10 s)
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    assert started.is_set() and registry._builds._tasks, "no build under way"
    await registry.close()
    await engine.dispose()
    print("closed", flush=True)

asyncio.run(main())
"""


async def test_the_process_exits_during_a_build(tmp_path: Path) -> None:
    """A build cannot be stopped midway, but it runs on a daemon thread: a process shutting down
    during one exits instead of waiting for it (here, for a build that never ends). One
    database is enough: the thread, not the database, is under test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'gallery.db'}"
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await upgrade_database(Settings(database_url=url), engine=engine)
        repo = SqlGalleryRepository(engine)
        await repo.ensure_space(L2_SPACE)
        for i in range(4):
            await enroll(repo, f"p{i}", 10 + i)
        await repo.close()
    finally:
        await engine.dispose()
    script = tmp_path / "exit_during_a_build.py"
    script.write_text(EXIT_DURING_A_BUILD)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), url],
        capture_output=True,
        text=True,
        timeout=120,  # a hang, not a speed: the build never ends
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"
