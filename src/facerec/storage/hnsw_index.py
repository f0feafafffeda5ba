"""HNSW index (usearch) with string ids, real deletion, optional quantised graph + exact re-rank.

``dtype="f32"``: the graph holds the vectors; its distances are exact. ``"f16"`` / ``"i8"``: the
graph holds rounded copies (2 or 1 bytes per value) and :class:`ExactRows` a float32 copy; a
search takes the graph's ``k × rescore`` nearest and re-ranks them exactly, so the distances
returned are exact and only a candidate the graph ranked below ``k × rescore`` can be missed.

``graph_dim`` (cosine spaces): the graph runs on a learned projection of the vectors to at most
that many dimensions (:mod:`facerec.storage.projection`: fitted on the first, building add, as
narrow as the gallery's neighbours allow, and kept only when a self-check on the gallery finds
the nearest faces exact search finds), over exact rows like a quantised graph, with at least
``projection.MARGIN`` more candidates re-ranked than faces asked for.

Erasure: a removed vector is unreachable at once; its graph slot is overwritten
(:func:`~facerec.storage.graph_search.scrub_free_slots`) and its exact row zeroed, so it
survives neither in memory nor in a snapshot written later. Persistence is in
:mod:`facerec.storage.hnsw_snapshot`. A built or restored graph is collapsed into 2 MiB pages
where Linux allows (:mod:`facerec.storage.huge_pages`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from facerec.errors import InvalidInputError
from facerec.storage import huge_pages as huge_pages_
from facerec.storage import projection
from facerec.storage.build_order import add_in_order
from facerec.storage.graph_search import graph_search, scrub_free_slots
from facerec.storage.orphans import Orphans, unlisted, unreachable
from facerec.storage.projected_build import projected_build
from facerec.storage.quantised_rows import (
    ExactRows,
    GraphDtype,
    KeyPool,
    checked_matrix,
    checked_query,
)
from facerec.values import Metric

logger = logging.getLogger(__name__)

_EMPTY_IDS: list[str] = []


class HnswIndex:
    """usearch HNSW with string ids; removal is real (``Index.remove``) and scrubbed."""

    def __init__(
        self,
        dim: int,
        metric: Metric,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 1,
        dtype: GraphDtype = "f32",
        rescore: int = 4,
        graph_dim: int = 0,
        huge_pages: bool = True,
        ordered_build: bool = True,
    ) -> None:
        self.dim = dim
        self.metric: Metric = metric
        self.threads = threads
        self.dtype: GraphDtype = dtype
        self.rescore = max(1, rescore)
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.huge_pages = huge_pages  # collapse a built or restored graph (see huge_pages)
        self.ordered_build = ordered_build  # a first build takes near faces together (build_order)
        self.graph_memory: list[huge_pages_.Range] = []  # mapped while it was built/restored
        # Asked for; the projection exists once the first add has fitted (and kept) it.
        self.graph_dim = projection.graph_dim_for(graph_dim, dim, metric)
        self.projection: NDArray[np.float32] | None = None
        self._index = self._graph(dim, expansion_search)
        wants_rows = dtype != "f32" or self.graph_dim > 0
        self._exact = ExactRows(dim, metric) if wants_rows else None
        self._orphans = Orphans(dim, metric)  # faces the graph cannot find (see orphans)
        self._keys: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._pool = KeyPool()
        self.built_faces = 0  # faces its graph was built with (IndexBuilds rebuilds it as it grows)
        # Slots freed by removals and not reused yet (``Index.stats`` would count them, but
        # walks the whole graph: milliseconds per call at a million vectors).
        self._free = 0

    def _graph(self, ndim: int, expansion_search: int) -> Any:
        from usearch.index import Index

        return Index(
            ndim=ndim,
            metric="l2sq" if self.metric == "l2" else "cos",
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=expansion_search,
        )

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._keys

    @property
    def expansion_search(self) -> int:
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.expansion_search = value

    @property
    def quantised(self) -> bool:
        return self._exact is not None

    def memory_bytes(self) -> int:
        """Graph plus exact rows (the rows of a memory-mapped snapshot count in full)."""
        exact = self._exact.nbytes() if self._exact is not None else 0
        return int(self._index.memory_usage) + exact + self._orphans.nbytes()

    @property
    def orphans(self) -> int:
        """How many faces only the exact orphan list finds (see :mod:`orphans`)."""
        return len(self._orphans)

    def add(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        matrix = checked_matrix(vectors, self.dim, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInputError("duplicate ids in one add", code="duplicate_face_id")
        self.remove([face_id for face_id in ids if face_id in self._keys])
        if not len(ids):
            return
        fresh = self._pool.high == 0 and not self._keys  # keys are then 0 .. len(ids) - 1
        keys = self._pool.take(len(ids))
        if self._exact is not None:
            self._exact.put(keys, matrix)
        if fresh:
            with huge_pages_.recording() as self.graph_memory:
                if self.graph_dim:
                    graph_rows = projected_build(self, keys, matrix)
                else:
                    graph_rows = matrix
                    add_in_order(self._index, keys, matrix, self.threads, self.ordered_build)
        else:
            graph_rows = self._graph_rows(matrix)
            self._index.add(keys, graph_rows, threads=self.threads)
        self._adopt_orphans(keys, matrix, graph_rows, private=fresh)
        self._free = max(0, self._free - len(ids))  # usearch fills free slots first
        for face_id, key in zip(ids, keys.tolist(), strict=True):
            self._keys[face_id] = key
            self._ids[key] = face_id
        if fresh:
            self.built_faces = len(ids)
            self.back_with_huge_pages()

    def _adopt_orphans(
        self,
        keys: NDArray[np.uint64],
        matrix: NDArray[np.float32],
        graph_rows: NDArray[np.float32],
        *,
        private: bool,
    ) -> None:
        """Keep the new faces the graph does not find by their own vector in the orphan list."""
        count = self.candidate_count(2)
        lost = unreachable(self._index, keys, graph_rows, count, self.threads, private=private)
        if len(lost):
            sketch = graph_rows[lost] if self.projection is not None else None
            self._orphans.add(keys[lost], matrix[lost], sketch)
            logger.info(
                "HNSW graph: %d of %d faces added are not found by graph search; kept in the "
                "exact orphan list (%d orphans of %d faces)",
                len(lost),
                len(keys),
                len(self._orphans),
                len(self._index),
            )

    def back_with_huge_pages(self) -> int:
        """Collapse the graph's memory into 2 MiB pages when ``huge_pages`` (bytes taken)."""
        if not self.huge_pages or not self.graph_memory:
            return 0
        return huge_pages_.collapse(self.graph_memory, f"HNSW graph of {len(self)} faces")

    def ids(self) -> list[str]:
        return list(self._keys)

    def rows_of(self, ids: Sequence[str]) -> tuple[list[str], NDArray[np.float32]]:
        """Those of ``ids`` held now and a float32 copy of their vectors (unit rows for cosine
        when the graph is quantised or projected), in order: what a rebuild starts from."""
        kept = [face_id for face_id in ids if face_id in self._keys]
        keys = np.fromiter((self._keys[f] for f in kept), np.uint64, len(kept))
        if self._exact is not None:
            return kept, self._exact.rows(keys)
        if not kept:
            return kept, np.empty((0, self.dim), np.float32)
        rows = self._index.get(keys, dtype=np.float32)
        return kept, np.asarray(rows, np.float32).reshape(len(kept), self.dim)

    def _graph_rows(self, matrix: NDArray[np.float32]) -> NDArray[np.float32]:
        return matrix if self.projection is None else projection.project(matrix, self.projection)

    def _graph_query(self, q: NDArray[np.float32]) -> NDArray[np.float32]:
        return q if self.projection is None else projection.project_query(q, self.projection)

    def detach_rows(self) -> None:
        """Exact rows mapped from a snapshot, copied into memory (see ``ExactRows.detach``)."""
        if self._exact is not None:
            self._exact.detach()

    def remove(self, ids: Iterable[str]) -> int:
        keys = [self._keys.pop(face_id) for face_id in ids if face_id in self._keys]
        if not keys:
            return 0
        for key in keys:
            del self._ids[key]
        self._index.remove(np.asarray(keys, dtype=np.uint64))
        self._free += len(keys)
        scrub_free_slots(self._index, self._free)
        if self._exact is not None:
            self._exact.scrub(keys)
        self._orphans.discard(keys)
        self._pool.give_back(keys)
        return len(keys)

    def search(self, query: NDArray[np.float32], k: int) -> tuple[list[str], NDArray[np.float32]]:
        q = checked_query(query, self.dim)
        if not self._keys or k <= 0:
            return _EMPTY_IDS, np.empty(0, np.float32)
        keys, distances = self._candidates(q, min(k, len(self._keys)))
        return [self._ids[key] for key in keys.tolist()], distances

    def candidate_count(self, k: int) -> int:
        """How many of the graph's nearest a search for ``k`` faces takes: ``k`` when the graph's
        distances are exact, else ``k × rescore`` (and at least ``k + projection.MARGIN`` on a
        projected graph) to re-rank exactly."""
        if self._exact is None:
            return k
        wanted = k * self.rescore
        if self.projection is not None:
            wanted = max(wanted, k + projection.MARGIN)
        return min(wanted, max(len(self._index), k))

    def _candidates(
        self, q: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """The ``k`` nearest keys and their exact distances (the graph's and the orphans')."""
        graph_q = self._graph_query(q)
        keys, distances = graph_search(self._index, graph_q, self.candidate_count(k))
        if self._exact is not None:  # re-ranked exactly, the orphans that may be near with them
            if len(self._orphans):
                o_keys = self._orphans.contenders(q, k, graph_q)
                fresh = unlisted(o_keys, keys)
                if fresh:
                    keys = np.concatenate([keys, o_keys[fresh]])
            return self._exact.rerank(keys, q, k)
        if self.metric == "l2":
            distances = np.sqrt(np.maximum(distances, 0.0))
        if len(self._orphans):
            o_keys, o_distances = self._orphans.nearest(q, k)
            fresh = unlisted(o_keys, keys)
            if fresh:
                keys = np.concatenate([keys, o_keys[fresh]])
                distances = np.concatenate([distances, o_distances[fresh]])
                order = np.argsort(distances, kind="stable")[:k]
                return keys[order], distances[order]
        return keys, distances

    # ---- persistence (see hnsw_snapshot) -------------------------------------------------------

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        from facerec.storage.hnsw_snapshot import write_snapshot

        write_snapshot(self, path, extra or {})

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False, huge_pages: bool = True) -> Self:
        index, _ = cls.load_with_extra(path, mmap=mmap, huge_pages=huge_pages)
        return index

    @classmethod
    def load_with_extra(
        cls, path: Path, *, mmap: bool = False, huge_pages: bool = True
    ) -> tuple[Self, dict[str, Any]]:
        """``mmap``: map the exact rows of a quantised snapshot copy-on-write instead of reading
        them (a restart then reads only the graph); see :class:`ExactRows`. ``huge_pages``:
        collapse the restored graph into 2 MiB pages (see :mod:`huge_pages`)."""
        from facerec.storage.hnsw_snapshot import read_snapshot

        return read_snapshot(cls, path, mmap=mmap, huge_pages=huge_pages)
