"""The order a first HNSW build takes its faces in (``build_order``): near faces together, every
face once, and the same answers as a build in the gallery's own order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.storage import build_order
from facerec.storage.build_order import ORDER_FROM, add_in_order, locality_order
from facerec.storage.hnsw_index import HnswIndex
from facerec.storage.index_builds import configured_hnsw
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace


def clustered(clusters: int, per_cluster: int, dim: int, seed: int = 0) -> NDArray[np.float32]:
    """``clusters`` tight clusters, their rows interleaved (row i belongs to cluster i % n)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = np.arange(clusters * per_cluster) % clusters
    rows = centres[labels] + 0.05 * rng.standard_normal((len(labels), dim)).astype(np.float32)
    return rows.astype(np.float32)


def test_a_small_gallery_keeps_its_own_order() -> None:
    assert locality_order(np.zeros((ORDER_FROM - 1, 8), np.float32)) is None


def test_the_order_takes_every_row_once_and_each_cluster_together() -> None:
    clusters = 25
    rows = clustered(clusters, 600, 48)
    order = locality_order(rows)
    assert order is not None
    assert np.array_equal(np.sort(order), np.arange(len(rows)))
    labels = order % clusters  # the true cluster of each row, in the order's sequence
    changes = int(np.count_nonzero(labels[1:] != labels[:-1]))
    # given order: a change at every row; a cluster split over k-means clusters can be left and
    # come back at most a few times.
    assert changes < 3 * clusters


class RecordingGraph:
    def __init__(self) -> None:
        self.adds: list[tuple[NDArray[np.uint64], NDArray[np.float32]]] = []

    def add(self, keys: NDArray[np.uint64], rows: NDArray[np.float32], threads: int) -> None:
        self.adds.append((keys.copy(), rows.copy()))


def test_the_graph_gets_each_key_with_its_own_row_in_chunks(monkeypatch: Any) -> None:
    monkeypatch.setattr(build_order, "ADD_CHUNK", 4_000)
    rows = clustered(20, 600, 16)
    keys = np.arange(len(rows), dtype=np.uint64)[::-1].copy()  # keys unlike row numbers
    graph = RecordingGraph()
    add_in_order(graph, keys, rows, threads=2)
    assert len(graph.adds) == 3 and all(len(k) <= 4_000 for k, _ in graph.adds)
    added_keys = np.concatenate([k for k, _ in graph.adds])
    added_rows = np.concatenate([r for _, r in graph.adds])
    order = locality_order(rows)
    assert order is not None
    assert np.array_equal(added_keys, keys[order])
    assert np.array_equal(added_rows, rows[order])


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_an_ordered_build_finds_what_the_given_order_finds(metric: Any, tmp_path: Path) -> None:
    rows = clustered(40, 300, 32, seed=1)
    ids = [f"face-{i}" for i in range(len(rows))]
    for ordered in (True, False):
        index = HnswIndex(32, metric, threads=2, ordered_build=ordered)
        index.add(ids, rows)
        path = tmp_path / f"{ordered}.hnsw"
        index.save(path)
        restored = HnswIndex.load(path)
        picks = range(0, len(rows), 97)
        found = [restored.search(rows[i], 1)[0][0] for i in picks]
        assert found == [ids[i] for i in picks]  # each face finds itself
        assert sorted(restored.ids()) == sorted(ids)


@pytest.mark.parametrize("ordered", [True, False])
def test_the_service_builds_in_locality_order_unless_told_not_to(
    ordered: bool, monkeypatch: Any
) -> None:
    options = replace(IndexOptions(), ordered_build=ordered)
    index = configured_hnsw(options, EmbeddingSpace("s@16", 16, "l2"))
    calls: list[int] = []
    real = build_order.locality_order

    def spy(rows: NDArray[np.float32]) -> NDArray[np.intp] | None:
        calls.append(len(rows))
        return real(rows)

    monkeypatch.setattr(build_order, "locality_order", spy)
    rows = clustered(20, 600, 16)
    index.add([f"f{i}" for i in range(len(rows))], rows)
    assert calls == ([len(rows)] if ordered else [])
    index.add(["late"], rows[:1] + 1.0)  # later faces are appended, never reordered
    assert calls == ([len(rows)] if ordered else [])
