"""Vector indexes: exact vs brute force, HNSW vs exact, real deletion, persistence."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.storage import quantised_rows
from facerec.storage.graph_search import graph_search
from facerec.storage.quantised_rows import graph_dtype
from facerec.storage.vector_index import ExactIndex, GraphDtype, HnswIndex
from facerec.values import Metric


def clustered(
    n_ids: int, per_id: int, dim: int, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Identity centres and ``per_id`` noisy samples of each (like faces of people)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim)).astype(np.float32)
    samples = np.repeat(centres, per_id, axis=0) + 0.15 * rng.standard_normal(
        (n_ids * per_id, dim)
    ).astype(np.float32)
    return centres, samples.astype(np.float32)


def brute(data: NDArray[np.float32], q: NDArray[np.float32], metric: Metric) -> NDArray[np.float64]:
    if metric == "l2":
        return np.asarray(np.linalg.norm(data.astype(np.float64) - q, axis=1), np.float64)
    d = data / np.linalg.norm(data, axis=1, keepdims=True)
    return np.asarray(1.0 - d @ (q / np.linalg.norm(q)), np.float64)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_matches_brute_force(metric: Metric) -> None:
    _, data = clustered(50, 4, 16)
    ids = [f"f{i}" for i in range(len(data))]
    index = ExactIndex(16, metric, capacity=8)  # forces growth
    index.add(ids, data)
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.standard_normal(16).astype(np.float32)
        got, dist = index.search(q, 5)
        expected = brute(data, q, metric)
        order = np.argsort(expected)[:5]
        assert got == [ids[i] for i in order]
        np.testing.assert_allclose(dist, expected[order], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_remove_and_replace(kind: str) -> None:
    _, data = clustered(20, 3, 8)
    ids = [f"f{i}" for i in range(len(data))]
    index = ExactIndex(8, "l2") if kind == "exact" else HnswIndex(8, "l2")
    index.add(ids, data)
    assert len(index) == 60
    assert index.remove(["f0", "f1", "missing"]) == 2
    assert "f0" not in index and len(index) == 58
    got, _ = index.search(data[0], 58)
    assert "f0" not in got and "f1" not in got and len(got) == 58
    # Re-adding an id replaces its vector.
    index.add(["f2"], data[59:60])
    got, dist = index.search(data[59], 2)
    assert set(got) == {"f2", "f59"} and float(dist[0]) < 1e-3
    assert len(index) == 58
    with pytest.raises(InvalidInputError):
        index.add(["x"], np.zeros((1, 9), np.float32))
    with pytest.raises(InvalidInputError):
        index.search(np.zeros(9, np.float32), 1)


def test_empty_indexes() -> None:
    for index in (ExactIndex(4, "l2"), HnswIndex(4, "cosine")):
        ids, dist = index.search(np.ones(4, np.float32), 3)
        assert ids == [] and dist.size == 0


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_hnsw_recall_vs_exact(metric: Metric) -> None:
    centres, data = clustered(2000, 3, 32, seed=3)
    ids = [f"f{i}" for i in range(len(data))]
    exact = ExactIndex(32, metric)
    exact.add(ids, data)
    hnsw = HnswIndex(32, metric, threads=2)
    hnsw.add(ids, data)
    rng = np.random.default_rng(4)
    picks = rng.integers(0, len(centres), 200)
    queries = centres[picks] + 0.15 * rng.standard_normal((200, 32)).astype(np.float32)
    agree = 0
    for q in queries:
        e_ids, e_dist = exact.search(q, 1)
        h_ids, h_dist = hnsw.search(q, 1)
        agree += e_ids[0] == h_ids[0]
        if e_ids[0] == h_ids[0]:
            np.testing.assert_allclose(h_dist, e_dist, rtol=1e-3, atol=1e-4)
    assert agree / len(queries) >= 0.99


def test_hnsw_persistence_round_trip(tmp_path: Path) -> None:
    _, data = clustered(100, 2, 16)
    ids = [f"f{i}" for i in range(len(data))]
    index = HnswIndex(16, "cosine", expansion_search=77)
    index.add(ids, data)
    index.remove(["f5"])
    path = tmp_path / "idx" / "a.hnsw"
    index.save(path, extra={"seq": 12})
    loaded, extra = HnswIndex.load_with_extra(path)
    assert extra == {"seq": 12}
    assert len(loaded) == len(index) == 199
    assert loaded.metric == "cosine" and loaded.expansion_search == 77
    for q in data[:20]:
        assert loaded.search(q, 3)[0] == index.search(q, 3)[0]
    loaded.add(["new"], data[5:6])  # keys continue after the saved ones
    assert loaded.search(data[5], 1)[0] == ["new"]
    assert not list(path.parent.glob("*.tmp"))


def test_hnsw_erasure_scrubs_vector_bytes(tmp_path: Path) -> None:
    """Removed vectors do not survive in the index memory that a snapshot writes out."""
    rng = np.random.default_rng(7)
    index = HnswIndex(16, "l2")
    live: dict[str, NDArray[np.float32]] = {}
    erased: dict[str, NDArray[np.float32]] = {}
    counter = 0
    for _ in range(150):
        if rng.random() < 0.6 or not live:
            n = int(rng.integers(1, 12))
            new_ids = [f"f{counter + i}" for i in range(n)]
            counter += n
            vectors = (rng.standard_normal((n, 16)) * 1000).astype(np.float32)
            index.add(new_ids, vectors)
            live.update(zip(new_ids, vectors, strict=True))
        else:
            doomed = list(
                rng.choice(list(live), int(rng.integers(1, min(8, len(live)) + 1)), replace=False)
            )
            index.remove(doomed)
            for face_id in doomed:
                erased[face_id] = live.pop(face_id)
    path = tmp_path / "x.hnsw"
    index.save(path)
    raw = path.read_bytes()
    assert erased and not any(v.tobytes() in raw for v in erased.values())
    assert all(v.tobytes() in raw for v in live.values())


# ---- quantised graphs (f16 / i8) with exact re-ranking -----------------------------------------


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("dtype", ["f16", "i8"])
def test_quantised_top1_matches_exact_with_exact_distances(
    metric: Metric, dtype: GraphDtype
) -> None:
    centres, data = clustered(1500, 3, 64, seed=5)
    ids = [f"f{i}" for i in range(len(data))]
    exact = ExactIndex(64, metric)
    exact.add(ids, data)
    hnsw = HnswIndex(64, metric, threads=2, dtype=dtype, rescore=4)
    hnsw.add(ids, data)
    assert hnsw.quantised
    rng = np.random.default_rng(6)
    picks = rng.integers(0, len(centres), 300)
    queries = centres[picks] + 0.15 * rng.standard_normal((300, 64)).astype(np.float32)
    agree = 0
    for q in queries:
        h_ids, h_dist = hnsw.search(q, 5)
        agree += h_ids[0] == exact.search(q, 1)[0][0]
        # Re-ranked: the distances are the exact ones of the ids returned, nearest first.
        expected = brute(data[[int(f[1:]) for f in h_ids]], q, metric)
        np.testing.assert_allclose(h_dist, expected, rtol=1e-5, atol=1e-5)
        assert list(h_dist) == sorted(h_dist)
    assert agree / len(queries) >= 0.99


def test_keys_are_reused_and_rows_scrubbed() -> None:
    _, data = clustered(10, 2, 8)
    ids = [f"f{i}" for i in range(len(data))]
    index = HnswIndex(8, "l2", dtype="i8")
    index.add(ids, data)
    for _ in range(5):  # churn does not grow the exact rows past the faces held at once
        index.remove(ids[:5])
        index.add(ids[:5], data[:5])
    assert index._pool.high == len(ids)
    index.remove(["f3"])
    assert index._exact is not None
    assert data[3].tobytes() not in index._exact.data.tobytes()
    assert index.search(data[3], 1)[0] != ["f3"]


def quantised_snapshot(tmp_path: Path) -> tuple[HnswIndex, Path, NDArray[np.float32], list[str]]:
    _, data = clustered(100, 2, 16)
    ids = [f"f{i}" for i in range(len(data))]
    index = HnswIndex(16, "cosine", expansion_search=77, dtype="i8", rescore=3)
    index.add(ids, data)
    index.remove(["f5"])
    path = tmp_path / "idx" / "q.hnsw"
    index.save(path, extra={"seq": 3})
    return index, path, data, ids


@pytest.mark.parametrize("mmap", [False, True])
def test_quantised_persistence_round_trip(tmp_path: Path, mmap: bool) -> None:
    index, path, data, _ = quantised_snapshot(tmp_path)
    before = path.read_bytes()
    loaded, extra = HnswIndex.load_with_extra(path, mmap=mmap)
    assert extra == {"seq": 3}
    assert (loaded.dtype, loaded.rescore, loaded.expansion_search) == ("i8", 3, 77)
    assert len(loaded) == len(index) == 199 and "f5" not in loaded
    for q in data[:30]:
        got, dist = loaded.search(q, 3)
        want, want_dist = index.search(q, 3)
        assert got == want
        np.testing.assert_allclose(dist, want_dist, rtol=1e-6, atol=1e-6)
    loaded.add(["new"], data[5:6] * 3.0)  # a freed key is reused; rows grow past a mapping
    loaded.add([f"more{i}" for i in range(150)], data[:150] + 0.01)
    assert loaded.search(data[5], 1)[0] == ["new"]
    loaded.remove(["f7"])
    # Loading copies or maps copy-on-write: the snapshot file is never written through.
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("mmap", [False, True])
def test_erasure_after_load(tmp_path: Path, mmap: bool) -> None:
    """A face removed from a loaded (or mapped) snapshot is gone from memory and from the
    next snapshot; a mapped file itself is left alone (the registry deletes it)."""
    _, path, data, _ = quantised_snapshot(tmp_path)
    loaded = HnswIndex.load(path, mmap=mmap)
    unit = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    assert loaded._exact is not None
    assert unit[9].tobytes() in loaded._exact.data.tobytes()
    loaded.remove(["f9"])
    assert not isinstance(loaded._exact.data, np.memmap)  # the file is no longer mapped
    assert "f9" not in loaded.search(data[9], 10)[0]
    assert unit[9].tobytes() not in loaded._exact.data.tobytes()
    again = tmp_path / "again.hnsw"
    loaded.save(again)
    raw = again.read_bytes()
    assert unit[9].tobytes() not in raw and unit[8].tobytes() in raw
    assert unit[9].tobytes() in path.read_bytes()  # the old snapshot: deleted by the registry


def test_old_or_truncated_snapshot_is_refused(tmp_path: Path) -> None:
    _, path, _, _ = quantised_snapshot(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ValueError):
        HnswIndex.load(path)
    path.write_bytes(b"\x02\0\0\0\0\0\0\0{}")
    with pytest.raises(ValueError):
        HnswIndex.load(path)


def _as_format_3(path: Path) -> None:
    """Rewrite a snapshot in format 3's layout: ids and owners in the JSON header."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    keys_end = 8 + size + 8 * header["faces"]
    ids_end = keys_end + header["ids_bytes"]
    ids = raw[keys_end:ids_end].decode().split("\n")
    owners_end = ids_end + (header["owners_bytes"] or 0)
    if header["owners_bytes"] is not None:
        owners = raw[ids_end:owners_end].decode().split("\n")
        header["extra"]["owners"] = dict(zip(ids, owners, strict=True))
    for key in ("faces", "ids_bytes", "owners_bytes"):
        del header[key]
    header.update(format=3, ids=ids)
    encoded = json.dumps(header).encode()
    graph_end = owners_end + 4 * header["dim"] * header["projected_dim"] + header["graph_bytes"]
    rows = raw[graph_end + -graph_end % 64 :]
    old = struct.pack("<Q", len(encoded)) + encoded + raw[8 + size : keys_end]
    old += raw[owners_end:graph_end]
    path.write_bytes(old + b"\0" * (-len(old) % 64) + rows)


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("layout", [4, 3])
def test_a_snapshot_keeps_ids_and_owners(tmp_path: Path, mmap: bool, layout: int) -> None:
    """Ids and owners (one per line since format 4, in the JSON header in format 3, still
    read) come back as saved: owners of ids the index does not hold are not kept."""
    index, path, data, ids = quantised_snapshot(tmp_path)
    owners = {face: f"person:{i // 2}@x" for i, face in enumerate(ids)}  # f5 is not indexed
    index.save(path, extra={"seq": 4, "owners": owners})
    if layout == 3:
        _as_format_3(path)
    loaded, extra = HnswIndex.load_with_extra(path, mmap=mmap)
    del owners["f5"]
    assert extra == {"seq": 4, "owners": owners}
    assert sorted(loaded._keys) == sorted(owners)
    for q, face in zip(data[:20], ids[:20], strict=True):
        if face != "f5":
            assert loaded.search(q, 1)[0] == [face]


def test_a_snapshot_refuses_ids_with_line_breaks(tmp_path: Path) -> None:
    index = HnswIndex(8, "cosine", dtype="i8")
    index.add(["a\nb"], np.ones((1, 8), np.float32))
    with pytest.raises(ValueError):
        index.save(tmp_path / "n.hnsw")
    assert not list(tmp_path.iterdir())


def test_auto_graph_dtype_by_metric() -> None:
    assert graph_dtype("auto", "cosine") == "i8" and graph_dtype("auto", "l2") == "f32"
    assert graph_dtype("f16", "l2") == "f16"


def test_empty_quantised_index_round_trip(tmp_path: Path) -> None:
    index = HnswIndex(8, "cosine", dtype="i8")
    index.add(["a"], np.ones((1, 8), np.float32))
    index.remove(["a"])
    index.save(tmp_path / "e.hnsw")
    loaded = HnswIndex.load(tmp_path / "e.hnsw")
    assert len(loaded) == 0 and loaded.search(np.ones(8, np.float32), 1)[0] == []
    loaded.add(["b"], np.ones((1, 8), np.float32))
    assert loaded.search(np.ones(8, np.float32), 1)[0] == ["b"]


@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_graph_search_answers_what_usearch_search_answers(dtype: str) -> None:
    """The compiled call behind HnswIndex's searches gives Index.search's keys and distances,
    as many as the graph finds (at most the faces it holds)."""
    from usearch.index import Index

    rng = np.random.default_rng(7)
    index = Index(ndim=16, metric="cos", dtype=dtype, connectivity=8)
    index.add(np.arange(300, dtype=np.uint64), rng.standard_normal((300, 16), np.float32))
    for query in rng.standard_normal((20, 16), np.float32):
        for count in (1, 9, 500):
            keys, distances = graph_search(index, query, count)
            expected = index.search(query, count, threads=1)
            assert keys.dtype == np.uint64 and distances.dtype == np.float32
            np.testing.assert_array_equal(keys, np.asarray(expected.keys, np.uint64))
            np.testing.assert_array_equal(distances, np.asarray(expected.distances, np.float32))
            assert 0 < len(keys) <= min(count, 300)


def test_large_exact_rows_grow_by_blocks_not_by_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``GROW_BY_COPY_BYTES`` the exact rows grow by new blocks: the rows already there
    are never copied (a 2 GB copy stalled the first enrollment after a 1M x 512-D restart),
    and searches, erasure and snapshots see every block."""
    monkeypatch.setattr(quantised_rows, "GROW_BY_COPY_BYTES", 16 * 1024)  # 256 rows of 16-D
    _, data = clustered(200, 3, 16)  # 600 faces
    ids = [f"f{i}" for i in range(len(data))]
    index = HnswIndex(16, "cosine", dtype="i8", rescore=3)
    index.add(ids[:300], data[:300])  # the first add: one matrix
    exact = index._exact
    assert exact is not None and not exact._more
    first = exact.data
    for start in range(300, 600, 50):
        index.add(ids[start : start + 50], data[start : start + 50])
    assert exact.data is first and exact._more  # grown by blocks, the first one kept
    unit = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    keys = np.asarray([index._keys[f] for f in ids], np.uint64)
    np.testing.assert_array_equal(exact.rows(keys), unit)
    for q, face in zip(data[::37], ids[::37], strict=True):
        assert index.search(q, 1)[0] == [face]
    index.remove(["f550", "f10"])
    assert unit[550].tobytes() not in b"".join(p.tobytes() for p in exact.parts(exact.capacity))
    path = tmp_path / "blocks.hnsw"
    index.save(path)
    loaded = HnswIndex.load(path)
    assert loaded._exact is not None and not loaded._exact._more
    kept = [f for f in ids if f not in ("f550", "f10")]
    _, expected = index.rows_of(kept)
    _, found = loaded.rows_of(kept)
    np.testing.assert_array_equal(found, expected)
    assert unit[550].tobytes() not in path.read_bytes()
