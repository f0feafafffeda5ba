"""Calls into a usearch graph: one query as cheaply as Python allows (:func:`graph_search`),
many at once, and the overwriting of the slots removals freed (:func:`scrub_free_slots`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def graph_search(
    index: Any, query: NDArray[np.float32], count: int
) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
    """The ``count`` nearest keys of one query in a usearch ``Index`` and their graph distances,
    on one thread (usearch's default hands even one query to a thread pool: +0.1 ms). It calls
    the compiled index as ``Index.search`` does, without the ``BatchMatches`` and ``Matches``
    objects that wrap the answer (~15-20 µs of Python, ~6% of a 1M-face search);
    tests/storage/test_vector_index.py holds it to ``Index.search``'s answers."""
    from usearch.compiled import ScalarKind

    keys, distances, counts = index._compiled.search_many(
        query.reshape(1, -1), count=count, exact=False, threads=1, dtype=ScalarKind.Unknown
    )[:3]
    found = int(counts[0])
    return (
        np.asarray(keys[0, :found], dtype=np.uint64),
        np.asarray(distances[0, :found], dtype=np.float32),
    )


def graph_search_many(
    index: Any, queries: NDArray[np.float32], count: int, threads: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The ``count`` nearest keys of each row of ``queries`` (``(n, count)``, rows padded past
    their found count) and how many each row found."""
    from usearch.compiled import ScalarKind

    keys, _, counts = index._compiled.search_many(
        np.ascontiguousarray(queries, np.float32),
        count=count,
        exact=False,
        threads=threads,
        dtype=ScalarKind.Unknown,
    )[:3]
    return np.asarray(keys, dtype=np.uint64), np.asarray(counts, dtype=np.int64)


SCRUB_KEY_BASE = np.uint64(2**63)  # real keys stay below the faces held and never get here


def scrub_free_slots(index: Any, free: int) -> None:
    """Overwrite the vectors of the ``free`` slots removals left in ``index``.

    usearch frees the slot of a removed key but keeps its bytes until a later add reuses it.
    Adding as many constant dummies as there are free slots makes every free slot hold the
    dummy instead; the dummies are removed again at once.
    """
    if free <= 0:
        return
    keys = SCRUB_KEY_BASE + np.arange(free, dtype=np.uint64)
    ndim = int(index.ndim)
    filler = np.full((free, ndim), 1.0 / np.sqrt(ndim), np.float32)
    index.add(keys, filler, threads=1)
    index.remove(keys)
