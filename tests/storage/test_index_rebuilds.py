"""HNSW graphs built again as their gallery grows, and snapshots that are rebuilt, not loaded."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from facerec.config import Settings
from facerec.storage import graph_copies, index_builds
from facerec.storage.index_builds import IndexBuilds
from facerec.storage.models import EmbeddingSpace
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.shards import Shard, ShardKey
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.vector_index import HnswIndex
from tests.storage.helpers import Backend, vec
from tests.storage.test_projection import DIM, faces, ids_of
from tests.storage.test_registry_startup import SPACE, enroll, wait_for

KEY: ShardKey = ("default", "s@1")


def builds_of(shards: dict[ShardKey, Shard], options: IndexOptions) -> IndexBuilds:
    return IndexBuilds(
        None,  # type: ignore[arg-type]  # no change during these builds: no vectors to fetch
        options,
        shards,
        asyncio.Lock(),
    )


def held_builds(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Graph builds wait on their thread until the event returned is set."""
    release = threading.Event()
    build = index_builds.IndexBuilds.hnsw_from

    def held(self: IndexBuilds, *args: Any) -> HnswIndex:
        assert release.wait(30)
        return build(self, *args)

    monkeypatch.setattr(index_builds.IndexBuilds, "hnsw_from", held)
    return release


async def test_a_graph_grown_past_the_growth_factor_is_built_again() -> None:
    """A graph built on a gallery too small for a projection, grown one add at a time, gets
    one when it is built again; every face is still found, each by its own vector."""
    data, queries = faces(650, 4)  # 2,600 faces
    options = IndexOptions(hnsw_threshold=100, graph_dim=32, build_threads=1, rebuild_growth=2.0)
    space = EmbeddingSpace(KEY[1], DIM, "cosine")
    shards: dict[ShardKey, Shard] = {}
    builds = builds_of(shards, options)
    graph = builds.hnsw_from(space, ids_of(data)[:600], data[:600])
    assert graph.projection is None and graph.built_faces == 600  # fewer than projection.MIN_ROWS
    shards[KEY] = Shard(space, graph, dict.fromkeys(ids_of(data)[:600], "p"))
    for start in range(600, 1100, 100):
        graph.add(ids_of(data)[start : start + 100], data[start : start + 100])
        builds.maybe_upgrade(KEY)
    assert shards[KEY].index is graph and not builds._tasks  # 1,100: not yet twice 600
    graph.add(ids_of(data)[1100:], data[1100:])
    builds.maybe_upgrade(KEY)
    await builds.wait()
    rebuilt = shards[KEY].index
    assert isinstance(rebuilt, HnswIndex) and rebuilt is not graph
    assert rebuilt.built_faces == len(data) and rebuilt.projection is not None
    assert shards[KEY].pending is None
    for i in range(0, len(data), 37):
        assert ids_of(data)[i] in rebuilt.search(data[i], 3)[0]
    found, distances = rebuilt.search(queries[0], 5)
    assert found == graph.search(queries[0], 5)[0]  # exact distances, re-ranked on both
    np.testing.assert_allclose(distances, graph.search(queries[0], 5)[1], atol=1e-6)


async def test_no_rebuild_when_growth_is_zero() -> None:
    data, _ = faces(300, 4)
    space = EmbeddingSpace(KEY[1], DIM, "cosine")
    shards: dict[ShardKey, Shard] = {}
    builds = builds_of(shards, IndexOptions(hnsw_threshold=10, build_threads=1, rebuild_growth=0))
    graph = builds.hnsw_from(space, ids_of(data)[:100], data[:100])
    graph.add(ids_of(data)[100:], data[100:])
    shards[KEY] = Shard(space, graph, {})
    builds.maybe_upgrade(KEY)
    assert not builds._tasks and shards[KEY].index is graph


@pytest.mark.parametrize("dtype", ["f32", "i8"])
async def test_the_copy_leaves_out_faces_removed_before_their_turn(
    monkeypatch: pytest.MonkeyPatch, dtype: Any
) -> None:
    """The copy a rebuild starts from runs a few rows at a time with the event loop free: a
    face removed meanwhile is not copied (it would come back), nor is a face added meanwhile
    under the key it freed; both are replayed from ``pending`` at the swap."""
    data, _ = faces(30, 4)
    index = HnswIndex(DIM, "cosine", threads=1, dtype=dtype)
    index.add(ids_of(data)[:100], data[:100])
    monkeypatch.setattr(graph_copies, "COPY_ROWS", 10)
    copy = asyncio.create_task(graph_copies.copied_rows(index))
    await asyncio.sleep(0)  # the first ten are copied
    index.remove(["f50", "f51"])
    index.add(["new"], data[100:101])  # takes a freed key
    ids, rows = await copy
    assert "f50" not in ids and "f51" not in ids and "new" not in ids and len(ids) == 98
    assert index.rows_of(["f50", "f51"])[1].shape == (0, DIM)  # none of them held any more
    expected = data[[int(f[1:]) for f in ids]]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    found = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(found, expected, atol=1e-5)


async def test_changes_during_a_rebuild_reach_the_new_graph(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through the registry, on a real database: the grown graph keeps answering while its
    successor is built; a person enrolled and one erased meanwhile are right in the new one,
    and the erased face, copied before its erasure, leaves no bytes in it."""
    repo = backend.repo
    people = [await enroll(repo, f"p{i}", 10 + i) for i in range(4)]
    options = IndexOptions(backend="memory", hnsw_threshold=2, build_threads=2)
    registry = IndexRegistry(repo, options)
    assert (await registry.search("default", SPACE, vec(12)))[0].person_id == people[2]
    shard = registry._shards[("default", SPACE)]
    first = shard.index
    assert isinstance(first, HnswIndex) and first.built_faces == 4
    release = held_builds(monkeypatch)
    copied: list[str] = []
    copy = index_builds.copied_rows

    async def recorded(index: HnswIndex) -> tuple[list[str], Any]:
        ids, rows = await copy(index)
        copied.extend(ids)
        return ids, rows

    monkeypatch.setattr(index_builds, "copied_rows", recorded)
    monkeypatch.setattr(graph_copies, "CATCH_UP_BELOW", 1)  # two changes: one round off the lock
    applied: list[tuple[int, int, int]] = []
    apply = index_builds.apply_changes

    def counted(graph: HnswIndex, gone: list[str], found: list[Any], *, threads: int) -> None:
        applied.append((len(gone), len(found), threads))
        apply(graph, gone, found, threads=threads)

    monkeypatch.setattr(index_builds, "apply_changes", counted)  # at the swap
    monkeypatch.setattr(graph_copies, "apply_changes", counted)  # in the rounds before it
    people += [await enroll(repo, f"p{i}", 10 + i) for i in range(4, 8)]
    await registry.sync()  # eight faces: twice the four it was built with
    assert shard.pending is not None and shard.index is first
    late = await enroll(repo, "late", 40)
    erased = [face for face, person in shard.owners.items() if person == people[5]]
    assert len(copied) == 8 and erased[0] in copied  # copied before its erasure
    await repo.delete_person(people[5])
    hits = await registry.search("default", SPACE, vec(40), k=10)
    assert hits[0].person_id == late and people[5] not in {h.person_id for h in hits}
    release.set()
    await wait_for(lambda: shard.index is not first)
    rebuilt = shard.index
    assert isinstance(rebuilt, HnswIndex) and rebuilt.built_faces == 8
    # The round, on the build's threads, removed the erased face and added the new one; the
    # swap under the lock had nothing left to do.
    assert applied == [(1, 1, 2), (0, 0, 1)]
    assert (await registry.search("default", SPACE, vec(40)))[0].person_id == late
    hits = await registry.search("default", SPACE, vec(15), k=20)
    assert people[5] not in {h.person_id for h in hits} and len(hits) == 8
    assert len(rebuilt) == 8 and "late" not in shard.owners.values()
    assert set(shard.owners.values()) == {h.person_id for h in hits}
    rebuilt.save(tmp_path / "rebuilt.hnsw")
    raw = (tmp_path / "rebuilt.hnsw").read_bytes()
    assert vec(15).astype(np.float32).tobytes() not in raw
    assert vec(14).astype(np.float32).tobytes() in raw
    await registry.close()


async def test_a_rebuild_holds_up_neither_snapshots_nor_shutdown(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """While a graph is built again, snapshots go on being written (of the graph it will
    replace), and a shutdown saves and returns instead of waiting for the build."""
    repo = backend.repo
    for i in range(4):
        await enroll(repo, f"p{i}", 10 + i)
    directory = tmp_path / "index"
    options = IndexOptions(backend="memory", hnsw_threshold=2, build_threads=1, index_dir=directory)
    registry = IndexRegistry(repo, options)
    assert await registry.search("default", SPACE, vec(12))
    release = held_builds(monkeypatch)
    try:
        for i in range(4, 8):
            await enroll(repo, f"p{i}", 10 + i)
        await registry.sync()
        assert registry._builds._rebuilds  # held open
        assert await asyncio.wait_for(registry.save(), 10) == 1
        (path,) = directory.glob("*.hnsw")
        saved = HnswIndex.load(path)
        assert (saved.built_faces, len(saved)) == (4, 8)  # the graph that keeps answering
        await asyncio.wait_for(registry.close(), 10)
        assert not registry._builds._tasks
    finally:
        release.set()


def test_growth_setting() -> None:
    options = IndexOptions.from_settings(Settings(index={"hnsw_rebuild_growth": 3}))
    assert (options.rebuild_growth, IndexOptions().rebuild_growth) == (3.0, 2.0)
    assert (
        IndexOptions.from_settings(Settings(index={"hnsw_rebuild_growth": 0})).rebuild_growth == 0
    )
    with pytest.raises(ValidationError):
        Settings(index={"hnsw_rebuild_growth": 0.5})  # would rebuild after every add


def test_built_faces_survive_a_snapshot(tmp_path: Path) -> None:
    data, _ = faces(100, 4)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8")
    index.add(ids_of(data)[:300], data[:300])
    index.add(ids_of(data)[300:], data[300:])
    index.save(tmp_path / "g.hnsw")
    restored = HnswIndex.load(tmp_path / "g.hnsw")
    assert (restored.built_faces, len(restored)) == (300, 400)


def _rewrite_header(path: Path, change: dict[str, Any], drop: str = "") -> None:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.update(change)
    header.pop(drop, None)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size :])


def test_snapshots_of_unchecked_or_other_graphs_are_rebuilt(tmp_path: Path) -> None:
    """A snapshot written before graphs kept an orphan list (its faces never checked), or
    built with another number of links per face than configured, is deleted, not loaded: the
    index is built again as configured (in the background, exact search answering)."""
    space = EmbeddingSpace("s@1", DIM, "cosine")
    data, _ = faces(100, 4)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", connectivity=16)
    index.add(ids_of(data), data)
    store = SnapshotStore(tmp_path, dtype="i8", connectivity=16)
    path = store.path("default", space.name)

    store.write("default", space.name, index, 5, {})
    assert store.read("default", space, 0, 9) is not None
    assert SnapshotStore(tmp_path, dtype="i8").read("default", space, 0, 9) is not None  # any M
    assert SnapshotStore(tmp_path, dtype="i8", connectivity=32).read("default", space, 0, 9) is None
    assert not path.exists()

    store.write("default", space.name, index, 5, {})
    _rewrite_header(path, {}, drop="orphans")
    assert store.read("default", space, 0, 9) is None
    assert not path.exists()
