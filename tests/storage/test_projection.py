"""HNSW graph on a learned projection: exact answers, the self-check, erasure and snapshots."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.config import Settings
from facerec.storage import projection
from facerec.storage.index_builds import IndexBuilds
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.vector_index import ExactIndex, HnswIndex

DIM = 192


def faces(
    n_ids: int, per_id: int, seed: int = 0, subspace: int = 24
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Identities mostly in a ``subspace``-D subspace (as face embeddings crowd into far fewer
    directions than they have) with noisy samples in every dimension; and new samples of
    enrolled identities as queries."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((subspace, DIM)).astype(np.float32)
    centres = rng.standard_normal((n_ids, subspace)).astype(np.float32) @ basis
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = np.float32(0.5 / np.sqrt(DIM))
    data = np.repeat(centres, per_id, axis=0)
    data += noise * rng.standard_normal(data.shape, np.float32)
    picks = rng.integers(0, n_ids, 200)
    queries = centres[picks] + noise * rng.standard_normal((200, DIM)).astype(np.float32)
    return data.astype(np.float32), queries.astype(np.float32)


# Graphs here are built on one thread: usearch's multi-threaded build is not deterministic, and
# on these small galleries its self-check then passed 0.990-1.000 (MIN_RECALL 0.995).


def ids_of(data: NDArray[np.float32]) -> list[str]:
    return [f"f{i}" for i in range(len(data))]


def test_fit_needs_rows_and_a_smaller_dimension() -> None:
    data, _ = faces(500, 4)
    assert projection.fit(data[:100], 32) is None  # too few rows to fit on
    assert projection.fit(data, DIM) is None  # nothing to reduce
    matrix = projection.fit(data, 32)
    assert matrix is not None and matrix.shape == (DIM, 32)
    # Orthonormal directions: projecting twice changes nothing.
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(32), atol=1e-4)


@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_projected_graph_finds_the_exact_nearest_with_exact_distances(dtype: str) -> None:
    data, queries = faces(1500, 4)
    ids = ids_of(data)
    exact = ExactIndex(DIM, "cosine")
    exact.add(ids, data)
    index = HnswIndex(DIM, "cosine", threads=1, dtype=dtype, graph_dim=32)  # type: ignore[arg-type]
    index.add(ids, data)
    assert index.projection is not None and index.projection.shape[0] == DIM
    width = index.projection.shape[1]
    assert width in (16, 24, 32)  # the narrowest that keeps the gallery's neighbours
    assert int(index._index.ndim) == width  # the graph itself is that narrow
    agree = 0
    for q in queries:
        got, distances = index.search(q, 5)
        agree += got[0] == exact.search(q, 1)[0][0]
        rows = data[[int(f[1:]) for f in got]]
        expected = 1.0 - rows @ q / np.linalg.norm(rows, axis=1) / np.linalg.norm(q)
        np.testing.assert_allclose(distances, expected, rtol=1e-5, atol=1e-5)
    assert agree / len(queries) >= 0.99


def test_a_projection_that_loses_the_nearest_faces_is_not_kept() -> None:
    """Gaussian vectors have no few directions that matter: a 4-D graph would rank them at
    random, so the self-check fails and the graph is built on every dimension."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3000, DIM)).astype(np.float32)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=4)
    index.add(ids_of(data), data)
    assert index.projection is None
    assert int(index._index.ndim) == DIM
    got, _ = index.search(data[17], 1)
    assert got == ["f17"]


def _kept_neighbours(rows: NDArray[np.float32], matrix: NDArray[np.float32]) -> float:
    """Brute force: share of rows whose exact nearest other row is among the 1 + MARGIN
    nearest in the space of ``matrix``'s columns."""
    exact = rows @ rows.T
    np.fill_diagonal(exact, -np.inf)
    p = projection.project(rows, matrix)
    near = p @ p.T
    np.fill_diagonal(near, -np.inf)
    top = np.argsort(-near, axis=1, kind="stable")[:, : 1 + projection.MARGIN]
    reached = np.take_along_axis(exact, top, 1).max(1)
    return float(np.mean(reached >= exact.max(1) - projection.TIE))


def test_the_graph_takes_the_fewest_directions_that_keep_the_neighbours() -> None:
    data, queries = faces(500, 4, subspace=8)  # identities crowd into 8 directions
    rows = data / np.linalg.norm(data, axis=1, keepdims=True)
    matrix = projection.fit(data, 32)
    assert matrix is not None
    chosen = projection.narrowest(rows, matrix, queries=len(rows))
    assert chosen.shape == (DIM, 16)
    np.testing.assert_array_equal(chosen, matrix[:, :16])  # the leading directions
    assert _kept_neighbours(rows, chosen) >= projection.MIN_FIDELITY
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32)
    index.add(ids_of(data), data)
    assert index.projection is not None and int(index._index.ndim) == 16
    exact = ExactIndex(DIM, "cosine")
    exact.add(ids_of(data), data)
    agree = sum(index.search(q, 1)[0] == exact.search(q, 1)[0] for q in queries)
    assert agree / len(queries) >= 0.99


def test_a_gallery_that_needs_every_direction_keeps_them() -> None:
    """Gaussian rows: 16 or 24 of 32 directions lose neighbours that 32 keep better, so the
    widest is returned (whether it suffices is the self-check's question)."""
    rng = np.random.default_rng(4)
    data = rng.standard_normal((2000, DIM)).astype(np.float32)
    rows = data / np.linalg.norm(data, axis=1, keepdims=True)
    matrix = projection.fit(data, 32)
    assert matrix is not None
    assert _kept_neighbours(rows, matrix[:, :24]) < projection.MIN_FIDELITY
    assert projection.narrowest(rows, matrix, queries=len(rows)).shape == (DIM, 32)


@pytest.mark.parametrize("width", [16, 24, 32])
def test_the_measure_of_kept_neighbours_is_the_brute_force_one(width: int) -> None:
    """narrowest's blockwise pass agrees with a brute-force count at each width: it picks the
    first width whose brute-force share reaches MIN_FIDELITY (on 3000 rows, past its first
    block of 1024 and into the next ones)."""
    data, _ = faces(750, 4, seed=width, subspace=20)
    rows = data / np.linalg.norm(data, axis=1, keepdims=True)
    matrix = projection.fit(data, 32)
    assert matrix is not None
    shares = {w: _kept_neighbours(rows, matrix[:, :w]) for w in (16, 24, 32)}
    expected = next((w for w in (16, 24, 32) if shares[w] >= projection.MIN_FIDELITY), 32)
    assert projection.narrowest(rows, matrix, queries=len(rows)).shape[1] == expected


def test_top_keeps_the_best_columns_across_blocks() -> None:
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((7, 5000)).astype(np.float32)
    top = projection._Top(7, 9)
    for start in range(0, 5000, 700):
        top.merge(scores[:, start : start + 700], start)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(np.sort(top.found, axis=1), np.sort(expected, axis=1))
    np.testing.assert_allclose(top.scores, -np.sort(-scores, axis=1)[:, :9])


def test_self_check_counts_what_exact_search_finds() -> None:
    data, _ = faces(200, 4)
    rows = data / np.linalg.norm(data, axis=1, keepdims=True)

    def exact_other(row: int) -> int:
        sims = rows @ rows[row]
        sims[row] = -np.inf
        return int(sims.argmax())

    assert projection.self_check(rows, exact_other) == 1.0
    assert projection.self_check(rows, lambda row: row) < 0.1  # itself is never an answer
    assert projection.self_check(rows, lambda row: -1) == 0.0


def test_only_cosine_spaces_with_more_dimensions_are_projected() -> None:
    data, _ = faces(500, 4)
    assert HnswIndex(DIM, "l2", graph_dim=32).graph_dim == 0
    assert HnswIndex(DIM, "cosine", graph_dim=DIM).graph_dim == 0
    small = HnswIndex(DIM, "cosine", graph_dim=32)
    small.add(ids_of(data[:10]), data[:10])  # too few faces to fit on: every dimension
    assert small.projection is None and int(small._index.ndim) == DIM


def test_removed_faces_leave_neither_graph_nor_rows(tmp_path: Path) -> None:
    data, _ = faces(600, 4)
    ids = ids_of(data)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32)
    index.add(ids, data)
    assert index.projection is not None
    index.remove(["f7"])
    assert "f7" not in index
    assert index.search(data[7], 1)[0] != ["f7"]
    assert index._exact is not None
    row = data[7] / np.linalg.norm(data[7])
    assert row.astype(np.float32).tobytes() not in index._exact.data.tobytes()
    index.add(["new"], data[7:8])  # the freed key is reused, projected like the rest
    assert index.search(data[7], 1)[0] == ["new"]
    path = tmp_path / "p.hnsw"
    index.remove(["new"])
    index.save(path)
    assert row.astype(np.float32).tobytes() not in path.read_bytes()


@pytest.mark.parametrize("mmap", [False, True])
def test_snapshot_keeps_the_projection(tmp_path: Path, mmap: bool) -> None:
    data, queries = faces(600, 4)
    ids = ids_of(data)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32, expansion_search=40)
    index.add(ids, data)
    path = tmp_path / "idx" / "p.hnsw"
    index.save(path, extra={"seq": 9})
    loaded, extra = HnswIndex.load_with_extra(path, mmap=mmap)
    assert extra == {"seq": 9}
    assert loaded.projection is not None
    np.testing.assert_array_equal(loaded.projection, index.projection)
    assert loaded.graph_dim == 32 and loaded.expansion_search == 40
    for q in queries[:50]:
        assert loaded.search(q, 3)[0] == index.search(q, 3)[0]
    loaded.add(["later"], queries[:1])  # adds after a restart go through the projection
    assert loaded.search(queries[0], 1)[0] == ["later"]


def test_the_registrys_graphs_are_projected_as_configured() -> None:
    """``FACEREC_INDEX__HNSW_GRAPH_DIM`` reaches the graphs the registry builds: on by default
    (128) for cosine spaces with more dimensions, never for L2 ones (dlib)."""
    assert IndexOptions.from_settings(Settings(_env_file=None)).graph_dim == 128
    data, _ = faces(600, 4)
    for graph_dim, metric, projected in (
        (32, "cosine", True),
        (0, "cosine", False),
        (32, "l2", False),
    ):
        builds = IndexBuilds(
            None,  # type: ignore[arg-type]  # hnsw_from reads no rows
            IndexOptions(graph_dim=graph_dim, build_threads=1),  # one thread: deterministic
            {},
            asyncio.Lock(),
        )
        index = builds.hnsw_from(EmbeddingSpace("s@1", DIM, metric), ids_of(data), data)  # type: ignore[arg-type]
        assert (index.projection is not None) is projected


def test_a_snapshot_of_another_projection_setting_is_deleted(tmp_path: Path) -> None:
    """Changing ``HNSW_GRAPH_DIM`` rebuilds the graphs as configured: the snapshot of another
    setting is not loaded (and is deleted)."""
    space = EmbeddingSpace("s@1", DIM, "cosine")
    data, _ = faces(600, 4)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32)
    index.add(ids_of(data), data)
    written = SnapshotStore(tmp_path, dtype="i8", graph_dim=32)
    written.write("default", space.name, index, 5, {})
    same = SnapshotStore(tmp_path, dtype="i8", graph_dim=32).read("default", space, 0, 9)
    assert same is not None and same.index.projection is not None
    assert SnapshotStore(tmp_path, dtype="i8", graph_dim=0).read("default", space, 0, 9) is None
    assert not written.path("default", space.name).exists()


def test_a_restored_graph_searches_as_configured_now(tmp_path: Path) -> None:
    """``HNSW_EXPANSION_SEARCH`` applies to a graph restored from a snapshot saved with another
    value (it used to keep the saved one until a rebuild); unset (None), the saved value."""
    space = EmbeddingSpace("s@1", DIM, "cosine")
    data, queries = faces(300, 4)
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32, expansion_search=64)
    index.add(ids_of(data), data)
    SnapshotStore(tmp_path, dtype="i8", graph_dim=32).write("default", space.name, index, 5, {})
    narrower = SnapshotStore(tmp_path, dtype="i8", graph_dim=32, expansion_search=24)
    restored = narrower.read("default", space, 0, 9)
    assert restored is not None and restored.index.expansion_search == 24
    assert restored.index.search(queries[0], 3)[0] == index.search(queries[0], 3)[0]
    as_saved = SnapshotStore(tmp_path, dtype="i8", graph_dim=32).read("default", space, 0, 9)
    assert as_saved is not None and as_saved.index.expansion_search == 64


def test_the_search_breadth_follows_the_metric_unless_configured(tmp_path: Path) -> None:
    """Unset, ``HNSW_EXPANSION_SEARCH`` is 64 for cosine graphs (re-ranked: a recognize walks
    160 wide anyway) and 256 for L2 ones (dlib's f32 graph, walked only as wide as ef), for a
    graph built now and one restored from a snapshot saved at another breadth; set, it is the
    breadth of both."""
    default, set_to_40 = IndexOptions(), IndexOptions(expansion_search=40)
    assert IndexOptions.from_settings(Settings()).expansion_search is None
    assert (default.search_ef("cosine"), default.search_ef("l2")) == (64, 256)
    assert (set_to_40.search_ef("cosine"), set_to_40.search_ef("l2")) == (40, 40)
    data, _ = faces(300, 4)
    for metric, built_at in (("cosine", 64), ("l2", 256)):
        space = EmbeddingSpace(f"{metric}@1", DIM, metric)
        for options, wanted in ((default, built_at), (set_to_40, 40)):
            builds = IndexBuilds(None, options, {}, asyncio.Lock())  # type: ignore[arg-type]
            index = builds.hnsw_from(space, ids_of(data), data)
            assert index.expansion_search == wanted
            index.expansion_search = 24  # saved at another breadth
            store = SnapshotStore.configured(replace(options, index_dir=tmp_path))
            store.write("default", space.name, index, 5, {})
            restored = store.read("default", space, 0, 9)
            assert restored is not None and restored.index.expansion_search == wanted


def test_graphs_are_built_with_the_configured_breadth_and_links() -> None:
    options = IndexOptions.from_settings(
        Settings(index={"hnsw_expansion_add": 256, "hnsw_connectivity": 24})
    )
    assert (options.expansion_add, IndexOptions().expansion_add) == (256, 128)
    assert (options.connectivity, IndexOptions().connectivity) == (24, 32)
    assert IndexOptions.from_settings(Settings()).connectivity == 32
    builds = IndexBuilds(
        None,  # type: ignore[arg-type]  # hnsw_from reads no rows
        options,
        {},
        asyncio.Lock(),
    )
    data, _ = faces(300, 4)
    index = builds.hnsw_from(EmbeddingSpace("s@1", DIM, "cosine"), ids_of(data), data)
    assert index.expansion_add == 256
    assert (index.connectivity, index._index.connectivity) == (24, 24)
