"""Faces the HNSW graph cannot find are kept findable (storage/orphans.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.storage.graph_search import graph_search
from facerec.storage.orphans import (
    RANK_MARGIN,
    RANKED_FROM,
    SCREEN_FROM,
    Orphans,
    unlisted,
    unreachable,
)
from facerec.storage.vector_index import GraphDtype, HnswIndex
from facerec.values import Metric

from .test_vector_index import brute, clustered


def found_by_own_vector(index: HnswIndex, ids: list[str], data: NDArray[np.float32]) -> int:
    """Faces whose own vector finds them first (or an exact tie at distance ~0)."""
    hits = 0
    for face_id, vector in zip(ids, data, strict=True):
        got, dist = index.search(vector, 1)
        hits += got[0] == face_id or float(dist[0]) <= 1e-6
    return hits


def graph_misses(index: HnswIndex, data: NDArray[np.float32]) -> int:
    """Faces the graph alone (no orphan list) does not return for their own vector, one
    search at a time as a request makes it."""
    misses = 0
    for key, vector in enumerate(data):
        keys, _ = graph_search(index._index, index._graph_query(vector), index.candidate_count(2))
        misses += key not in keys.tolist()
    return misses


@pytest.mark.parametrize(("metric", "dtype"), [("l2", "f32"), ("cosine", "i8"), ("cosine", "f16")])
def test_every_face_is_found_and_orphans_are_the_graphs_misses(
    metric: Metric, dtype: GraphDtype
) -> None:
    # Tight groups of near-identical faces built on two threads: the case where usearch's
    # graph loses faces (0-17 of these 4,500 per build, often a whole group).
    _, data = clustered(1500, 3, 64, seed=5)
    ids = [f"f{i}" for i in range(len(data))]
    for _ in range(2):
        index = HnswIndex(64, metric, threads=2, dtype=dtype)
        index.add(ids, data)  # >= SCREEN_FROM: the screened check of a private build
        assert len(data) >= SCREEN_FROM
        assert found_by_own_vector(index, ids, data) == len(ids)
        # The orphans are the graph's misses (a face the cheap screen found is not searched
        # again at the full expansion, so it can only count among the misses, not the orphans).
        misses = graph_misses(index, data)
        assert index.orphans <= misses <= index.orphans + 2


def duplicated(copies: int, groups: int, dim: int) -> tuple[list[str], NDArray[np.float32]]:
    """``groups`` vectors, each held ``copies`` times: the graph returns only a few of the
    copies, so the others are orphans whatever the build."""
    rng = np.random.default_rng(3)
    data = np.repeat(rng.standard_normal((groups, dim)).astype(np.float32), copies, axis=0)
    spread = rng.standard_normal((200, dim)).astype(np.float32)
    data = np.concatenate([spread, data])
    return [f"f{i}" for i in range(len(data))], data


@pytest.mark.parametrize("dtype", ["f32", "i8"])
@pytest.mark.parametrize("mmap", [False, True])
def test_orphans_survive_a_snapshot(tmp_path: Path, dtype: GraphDtype, mmap: bool) -> None:
    ids, data = duplicated(40, 3, 16)
    index = HnswIndex(16, "cosine", dtype=dtype)
    index.add(ids, data)
    assert index.orphans > 0
    index.save(tmp_path / "s.hnsw")
    loaded = HnswIndex.load(tmp_path / "s.hnsw", mmap=mmap)
    assert loaded.orphans == index.orphans
    np.testing.assert_array_equal(np.sort(loaded._orphans.keys), np.sort(index._orphans.keys))
    assert found_by_own_vector(loaded, ids, data) == len(ids)


def test_a_removed_orphan_is_gone_and_its_row_zeroed() -> None:
    ids, data = duplicated(30, 2, 8)
    index = HnswIndex(8, "l2")
    index.add(ids, data)
    orphan_ids = [index._ids[int(key)] for key in index._orphans.keys]
    assert len(orphan_ids) > 5
    rows = index._orphans.rows  # the matrix the removal zeroes before compacting
    assert np.all(np.any(rows[:5] != 0, axis=1))
    before = index.orphans
    removed_keys = index._orphans.keys[:5].tolist()
    index.remove(orphan_ids[:5])
    assert index.orphans == before - 5
    assert np.all(rows[:5] == 0)
    assert set(index._orphans.keys.tolist()).isdisjoint(removed_keys)
    for face_id in orphan_ids[:5]:
        assert face_id not in index
    got, _ = index.search(data[int(orphan_ids[0][1:])], len(index))
    assert not set(got) & set(orphan_ids[:5])


def test_new_faces_added_later_are_checked_too() -> None:
    ids, data = duplicated(20, 2, 8)
    index = HnswIndex(8, "l2")
    index.add(ids[:200], data[:200])  # the spread faces only
    extra = index.orphans
    for start in range(200, len(ids), 4):  # a few faces at a time, as enrolments come
        index.add(ids[start : start + 4], data[start : start + 4])
    assert index.orphans > extra
    assert found_by_own_vector(index, ids, data) == len(ids)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_orphans_nearest_matches_brute_force(metric: Metric) -> None:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((50, 12)).astype(np.float32)
    orphans = Orphans(12, metric)
    orphans.add(np.arange(100, 150, dtype=np.uint64), rows)
    for k in (1, 5, 80):
        q = rng.standard_normal(12).astype(np.float32)
        keys, dist = orphans.nearest(q, k)
        expected = brute(rows, q, metric)
        order = np.argsort(expected)[:k]
        assert keys.tolist() == (order + 100).tolist()
        np.testing.assert_allclose(dist, expected[order], rtol=1e-5, atol=1e-5)


def test_screening_finds_what_a_full_check_finds() -> None:
    from usearch.index import Index

    _, data = clustered(1500, 3, 32, seed=2)
    keys = np.arange(len(data), dtype=np.uint64)
    graph = Index(ndim=32, metric="l2sq", connectivity=16, expansion_add=128)
    graph.add(keys, data, threads=2)
    graph.expansion_search = 64  # type: ignore[misc]
    full = unreachable(graph, keys, data, 2, 2, private=False)
    screened = unreachable(graph, keys, data, 2, 2, private=True)
    assert graph.expansion_search == 64  # retuned only for the screen
    # Every face the screen flags is missed at the full expansion too (it is searched again).
    assert set(screened.tolist()) <= set(full.tolist())


def test_a_projected_graph_ranks_its_orphans_on_their_projected_rows(tmp_path: Path) -> None:
    # A gallery in a 12-dimensional subspace of 64 (so the projected graph is kept), with
    # groups of identical faces (so some are orphans whatever the build).
    rng = np.random.default_rng(4)
    basis = rng.standard_normal((12, 64)).astype(np.float32)
    spread = rng.standard_normal((1200, 12)).astype(np.float32) @ basis
    groups = np.repeat(rng.standard_normal((4, 12)).astype(np.float32) @ basis, 30, axis=0)
    data = np.concatenate([spread, groups])
    ids = [f"f{i}" for i in range(len(data))]
    index = HnswIndex(64, "cosine", dtype="i8", graph_dim=32)
    index.add(ids, data)
    assert index.projection is not None and index.orphans > 0
    assert index._orphans.sketch is not None
    assert index._orphans.sketch.shape == (index.orphans, index.projection.shape[1])
    assert found_by_own_vector(index, ids, data) == len(ids)
    index.save(tmp_path / "s.hnsw")
    loaded = HnswIndex.load(tmp_path / "s.hnsw")
    assert loaded._orphans.sketch is not None
    np.testing.assert_allclose(loaded._orphans.sketch, index._orphans.sketch, atol=1e-6)
    assert found_by_own_vector(loaded, ids, data) == len(ids)
    sketch = index._orphans.sketch
    index.remove([index._ids[int(index._orphans.keys[0])]])
    assert not np.any(sketch[0])  # the removed orphan's projected row is zeroed too


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_orphans_ranked_on_a_sketch_still_get_exact_distances(metric: Metric) -> None:
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((300, 24)).astype(np.float32)
    orphans = Orphans(24, metric)
    orphans.add(np.arange(300, dtype=np.uint64), rows, sketch=rows[:, :16].copy())
    q = rows[7] + 0.01 * rng.standard_normal(24).astype(np.float32)
    keys, dist = orphans.nearest(q, 3, q[:16].copy())
    assert int(keys[0]) == 7
    np.testing.assert_allclose(
        dist, brute(rows[keys.astype(np.intp)], q, metric), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_contenders_hold_every_orphan_nearest_would_answer(metric: Metric) -> None:
    # What a re-ranking graph merges (contenders) must include what exact ranking (nearest)
    # answers, with or without a sketch, below and beyond RANKED_FROM orphans.
    rng = np.random.default_rng(5)
    for count in (10, 200):
        rows = rng.standard_normal((count, 24)).astype(np.float32)
        for sketch in (None, rows[:, :16].copy()):
            orphans = Orphans(24, metric)
            orphans.add(np.arange(count, dtype=np.uint64), rows, sketch=sketch)
            for k in (1, 4):
                q = rng.standard_normal(24).astype(np.float32)
                sketch_q = None if sketch is None else q[:16].copy()
                kept = set(orphans.contenders(q, k, sketch_q).tolist())
                assert set(orphans.nearest(q, k, sketch_q)[0].tolist()) <= kept
                keep = k + RANK_MARGIN
                ranked = keep < count and (sketch is not None or count > RANKED_FROM)
                assert len(kept) == (keep if ranked else count)


def test_unlisted_leaves_out_orphans_the_graph_found_too() -> None:
    graph = np.array([5, 9, 2], np.uint64)
    assert unlisted(np.array([9, 7, 2, 11], np.uint64), graph) == [1, 3]
    assert unlisted(np.array([5], np.uint64), graph) == []
