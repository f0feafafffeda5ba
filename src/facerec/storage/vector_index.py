"""In-process vector indexes of one (collection, space), keyed by face id.

:class:`ExactIndex` (NumPy brute force) answers small galleries exactly; :class:`HnswIndex`
(usearch HNSW) answers large ones in well under a millisecond. Both really delete: a removed
vector is unreachable at once, and its bytes are overwritten (see ``HnswIndex._scrub``), so an
erased face survives neither in memory nor in a saved snapshot.

Distances: Euclidean for ``l2`` (not squared), ``1 - cos`` for ``cosine``, as
``FaceEmbedder.distance`` computes them.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.values import Metric

_EMPTY_IDS: list[str] = []


def _matrix(vectors: NDArray[Any], dim: int, count: int) -> NDArray[np.float32]:
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.shape != (count, dim):
        raise InvalidInputError(
            f"expected {count} vectors of {dim} values, got shape {matrix.shape}",
            code="embedding_dim_mismatch",
        )
    return matrix


def _query(query: NDArray[Any], dim: int) -> NDArray[np.float32]:
    vector = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(-1))
    if vector.size != dim:
        raise InvalidInputError(
            f"query has {vector.size} values, the index has {dim}", code="embedding_dim_mismatch"
        )
    return vector


class ExactIndex:
    """Brute force over a growable float32 matrix; rows of removed ids are zeroed."""

    def __init__(self, dim: int, metric: Metric, *, capacity: int = 256) -> None:
        self.dim = dim
        self.metric: Metric = metric
        self._data = np.zeros((max(capacity, 1), dim), np.float32)
        self._norms = np.zeros(max(capacity, 1), np.float32)  # squared norms (l2)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._rows

    def ids(self) -> list[str]:
        return list(self._ids)

    def vectors(self) -> NDArray[np.float32]:
        """Stored rows in ``ids()`` order (unit length for cosine)."""
        return self._data[: len(self._ids)].copy()

    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        matrix = _matrix(vectors, self.dim, len(ids))
        if self.metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        needed = len(self._ids) + len(ids)
        if needed > len(self._data):
            self._grow(needed)
        for face_id, row in zip(ids, matrix, strict=True):
            index = self._rows.get(face_id)
            if index is None:
                index = self._rows[face_id] = len(self._ids)
                self._ids.append(face_id)
            self._data[index] = row
            self._norms[index] = float(row @ row)

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for face_id in ids:
            index = self._rows.pop(face_id, None)
            if index is None:
                continue
            last = len(self._ids) - 1
            if index != last:  # move the last row into the hole
                moved = self._ids[last]
                self._ids[index] = moved
                self._rows[moved] = index
                self._data[index] = self._data[last]
                self._norms[index] = self._norms[last]
            self._ids.pop()
            self._data[last] = 0.0
            self._norms[last] = 0.0
            removed += 1
        return removed

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        count = len(self._ids)
        q = _query(query, self.dim)
        if count == 0 or k <= 0:
            return _EMPTY_IDS, np.empty(0, np.float32)
        data = self._data[:count]
        # einsum, not matmul: BLAS hands a matrix-vector product to its worker threads, and on a
        # machine busy with inference waking them costs milliseconds; einsum stays on this one.
        if self.metric == "cosine":
            norm = float(np.linalg.norm(q))
            scores = 1.0 - np.einsum("ij,j->i", data, q / norm if norm > 0 else q)
        else:  # |x|² - 2x·q (+ |q|², the same for every row)
            scores = self._norms[:count] - 2.0 * np.einsum("ij,j->i", data, q)
        k = min(k, count)
        top = np.argpartition(scores, k - 1)[:k] if k < count else np.arange(count)
        if self.metric == "cosine":
            distances = scores[top].astype(np.float32)
        else:  # recompute exactly: the expanded form loses precision for near duplicates
            distances = np.linalg.norm(data[top] - q, axis=1).astype(np.float32)
        order = np.argsort(distances, kind="stable")
        return [self._ids[i] for i in top[order]], distances[order]

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self._data))
        data = np.zeros((size, self.dim), np.float32)
        norms = np.zeros(size, np.float32)
        data[: len(self._ids)] = self._data[: len(self._ids)]
        norms[: len(self._ids)] = self._norms[: len(self._ids)]
        self._data, self._norms = data, norms


class HnswIndex:
    """usearch HNSW with string ids; removal is real (``Index.remove``) and scrubbed."""

    _SCRUB_KEY_BASE = np.uint64(2**63)  # real keys count up from 0 and never get here

    def __init__(
        self,
        dim: int,
        metric: Metric,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 1,
    ) -> None:
        from usearch.index import Index

        self.dim = dim
        self.metric: Metric = metric
        self.threads = threads
        self._index = Index(
            ndim=dim,
            metric="l2sq" if metric == "l2" else "cos",
            dtype="f32",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        self._keys: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._next_key = 0
        # Slots freed by removals and not reused yet (``Index.stats`` would count them, but
        # walks the whole graph: milliseconds per call at a million vectors).
        self._free = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._keys

    @property
    def expansion_search(self) -> int:
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.expansion_search = value  # type: ignore[misc]  # has a setter

    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        matrix = _matrix(vectors, self.dim, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInputError("duplicate ids in one add", code="duplicate_face_id")
        self.remove([face_id for face_id in ids if face_id in self._keys])
        keys = np.arange(self._next_key, self._next_key + len(ids), dtype=np.uint64)
        self._next_key += len(ids)
        if len(ids):
            self._index.add(keys, matrix, threads=self.threads)
            self._free = max(0, self._free - len(ids))  # usearch fills free slots first
        for face_id, key in zip(ids, keys.tolist(), strict=True):
            self._keys[face_id] = key
            self._ids[key] = face_id

    def remove(self, ids: Iterable[str]) -> int:
        keys = [self._keys.pop(face_id) for face_id in ids if face_id in self._keys]
        if not keys:
            return 0
        for key in keys:
            del self._ids[key]
        self._index.remove(np.asarray(keys, dtype=np.uint64))
        self._free += len(keys)
        self._scrub()
        return len(keys)

    def _scrub(self) -> None:
        """Overwrite the vectors of removed nodes.

        usearch frees the slot of a removed key but keeps its bytes until a later add reuses it.
        Adding as many constant dummies as there are free slots makes every free slot hold the
        dummy instead; the dummies are removed again at once.
        """
        free = self._free
        if free <= 0:
            return
        keys = self._SCRUB_KEY_BASE + np.arange(free, dtype=np.uint64)
        filler = np.full((free, self.dim), 1.0 / np.sqrt(self.dim), np.float32)
        self._index.add(keys, filler, threads=1)
        self._index.remove(keys)

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        q = _query(query, self.dim)
        if not self._keys or k <= 0:
            return _EMPTY_IDS, np.empty(0, np.float32)
        # threads=1: the default (0) hands even one query to a thread pool, +0.1 ms.
        matches = self._index.search(q, min(k, len(self._keys)), threads=1)
        distances = np.asarray(matches.distances, dtype=np.float32)
        if self.metric == "l2":
            distances = np.sqrt(np.maximum(distances, 0.0))
        ids = [self._ids[key] for key in matches.keys.tolist()]
        return ids, distances

    # ---- persistence: one file, so two processes saving at once never mix halves --------------

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        header = json.dumps(
            {
                "dim": self.dim,
                "metric": self.metric,
                "next_key": self._next_key,
                "threads": self.threads,
                "expansion_search": self.expansion_search,
                "ids": list(self._keys),
                "keys": list(self._keys.values()),
                "extra": extra or {},
            }
        ).encode()
        body = self._index.save()
        assert body is not None  # no path given: the index comes back as bytes
        # Owner-only: a snapshot holds every vector of a gallery (mkstemp files are 0600).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(struct.pack("<Q", len(header)))
                handle.write(header)
                handle.write(bytes(body))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Self:
        index, _ = cls.load_with_extra(path)
        return index

    @classmethod
    def load_with_extra(cls, path: Path) -> tuple[Self, dict[str, Any]]:
        from usearch.index import Index

        raw = path.read_bytes()
        (size,) = struct.unpack_from("<Q", raw)
        header = json.loads(raw[8 : 8 + size])
        index = cls(int(header["dim"]), header["metric"], threads=int(header["threads"]))
        restored = Index.restore(raw[8 + size :])
        if restored is None:
            raise ValueError(f"{path} is not a usearch index")
        restored.expansion_search = int(header["expansion_search"])  # type: ignore[misc]
        index._index = restored
        index._next_key = int(header["next_key"])
        index._keys = dict(zip(header["ids"], header["keys"], strict=True))
        index._ids = {key: face_id for face_id, key in index._keys.items()}
        index._free = max(0, int(restored.stats.nodes) - len(restored))
        if len(restored) != len(index._keys):
            raise ValueError(f"{path}: {len(restored)} vectors but {len(index._keys)} ids")
        return index, dict(header["extra"])
